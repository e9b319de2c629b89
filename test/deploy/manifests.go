// Package deploy reads the manifests of the repository's deploy/ directory
// strictly into k8s.io/api types, and lays out a Pod's Secret and ConfigMap
// volumes on disk the way the kubelet does (files, modes, fsGroup, the
// ..data symlinks), so that tests can run the controller with exactly the
// files and the credentials a Pod made from deploy/deployment.yaml has.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Manifests are the objects of a kustomization directory such as deploy/.
type Manifests struct {
	Kustomization       Kustomization
	Namespaces          []*corev1.Namespace
	ServiceAccounts     []*corev1.ServiceAccount
	ConfigMaps          []*corev1.ConfigMap
	Services            []*corev1.Service
	Deployments         []*appsv1.Deployment
	DaemonSets          []*appsv1.DaemonSet
	PodMonitors         []*PodMonitor
	PrometheusRules     []*PrometheusRule
	PodDisruptionBudget []*policyv1.PodDisruptionBudget
	ClusterRoles        []*rbacv1.ClusterRole
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
	Roles               []*rbacv1.Role
	RoleBindings        []*rbacv1.RoleBinding
}

// Kustomization is the part of kustomization.yaml deploy/ uses; any other
// field is an error, so that a manifest change the tests do not know of
// fails them instead of passing unseen.
type Kustomization struct {
	APIVersion      string            `json:"apiVersion"`
	Kind            string            `json:"kind"`
	Resources       []string          `json:"resources"`
	SecretGenerator []SecretGenerator `json:"secretGenerator,omitempty"`
}

// SecretGenerator makes a Secret from files of the directory.
type SecretGenerator struct {
	Name      string   `json:"name"`
	Namespace string   `json:"namespace,omitempty"`
	Type      string   `json:"type,omitempty"`
	Files     []string `json:"files"`
	Options   struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash,omitempty"`
	} `json:"options"`
}

// FileNames returns the files of the directory the generator reads
// ("tls.key=ca.key" reads ca.key).
func (g SecretGenerator) FileNames() []string {
	out := make([]string, 0, len(g.Files))
	for _, f := range g.Files {
		_, file, ok := strings.Cut(f, "=")
		if !ok {
			file = f
		}
		out = append(out, file)
	}
	return out
}

// Load reads dir/kustomization.yaml and every resource file it lists. Each
// document is decoded into its k8s.io/api type, strictly: an unknown or
// duplicated field, or a kind deploy/ is not expected to hold, is an error
// naming the file and the document.
func Load(dir string) (*Manifests, error) {
	m := &Manifests{}
	path := filepath.Join(dir, "kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read kustomization: %w", err)
	}
	if err := strict(data, &m.Kustomization); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Kustomization.Kind != "Kustomization" {
		return nil, fmt.Errorf("%s: kind %q, want Kustomization", path, m.Kustomization.Kind)
	}
	for _, res := range m.Kustomization.Resources {
		if err := m.loadFile(filepath.Join(dir, res)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Manifests) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", path, n, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		if err := m.add(doc); err != nil {
			return fmt.Errorf("%s: document %d: %w", path, n, err)
		}
	}
}

// stripComments drops whole-line comments, so that a document of comments
// alone counts as empty.
func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for line := range bytes.Lines(doc) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("#")) {
			out.Write(line)
		}
	}
	return out.Bytes()
}

// add decodes one document into the type its apiVersion and kind name.
func (m *Manifests) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "v1 Namespace":
		return decode(doc, &m.Namespaces)
	case "v1 ServiceAccount":
		return decode(doc, &m.ServiceAccounts)
	case "v1 ConfigMap":
		return decode(doc, &m.ConfigMaps)
	case "v1 Service":
		return decode(doc, &m.Services)
	case "apps/v1 Deployment":
		return decode(doc, &m.Deployments)
	case "apps/v1 DaemonSet":
		return decode(doc, &m.DaemonSets)
	case "monitoring.coreos.com/v1 PodMonitor":
		return decode(doc, &m.PodMonitors)
	case "monitoring.coreos.com/v1 PrometheusRule":
		return decode(doc, &m.PrometheusRules)
	case "policy/v1 PodDisruptionBudget":
		return decode(doc, &m.PodDisruptionBudget)
	case "rbac.authorization.k8s.io/v1 ClusterRole":
		return decode(doc, &m.ClusterRoles)
	case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
		return decode(doc, &m.ClusterRoleBindings)
	case "rbac.authorization.k8s.io/v1 Role":
		return decode(doc, &m.Roles)
	case "rbac.authorization.k8s.io/v1 RoleBinding":
		return decode(doc, &m.RoleBindings)
	default:
		return fmt.Errorf("unexpected kind %q (apiVersion %q)", tm.Kind, tm.APIVersion)
	}
}

// decode strictly decodes doc into a new T and appends it to list.
func decode[T any](doc []byte, list *[]*T) error {
	obj := new(T)
	if err := strict(doc, obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// strict decodes YAML as the API server decodes a request with
// fieldValidation=Strict: duplicate keys, unknown fields and fields of the
// wrong case are errors, reported with their path
// (spec.template.spec.fsgroup).
func strict(doc []byte, obj any) error {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(data, obj)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// Deployment returns the Deployment named name.
func (m *Manifests) Deployment(name string) (*appsv1.Deployment, error) {
	for _, d := range m.Deployments {
		if d.Name == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no Deployment %s", name)
}

// ConfigMap returns the ConfigMap named name.
func (m *Manifests) ConfigMap(name string) (*corev1.ConfigMap, error) {
	for _, c := range m.ConfigMaps {
		if c.Name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no ConfigMap %s", name)
}
