package live

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/catalog"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/store"
)

// Masters is the group that bypasses RBAC: only the break-glass admin
// kubeconfigs may be in it.
const Masters = "system:masters"

// Access is one permission a kubeconfig's component needs, asked of the
// API server with a SelfSubjectAccessReview.
type Access struct {
	Verb      string `json:"verb"`
	Group     string `json:"group,omitempty"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name,omitempty"`
	// Allowed is the answer (set by CheckKubeconfigs).
	Allowed bool `json:"allowed"`
}

func (a Access) String() string {
	r := a.Resource
	if a.Group != "" {
		r += "." + a.Group
	}
	if a.Name != "" {
		r += "/" + a.Name
	}
	if a.Namespace != "" {
		r += " in " + a.Namespace
	}
	return a.Verb + " " + r
}

// Expectation is who a kubeconfig must be and what it must be allowed.
type Expectation struct {
	// Path is the kubeconfig file.
	Path string `json:"path"`
	// Kubeconfig is its plan name; "" for a file the plan does not have,
	// which is reported with no expectation.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// User and Groups are what the plan's certificate says (groups besides
	// system:authenticated).
	User   string   `json:"user,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// MayBeMaster: system:masters is expected (admin, super-admin).
	MayBeMaster bool `json:"mayBeMaster,omitempty"`
	// Needs are the permissions its component needs.
	Needs []Access `json:"needs,omitempty"`
	// Trusted: the file was named on the command line (--kubeconfig), so
	// its exec plugin or auth provider may run, as kubectl would run it.
	// A kubeconfig of the directory under check is data, never a command.
	Trusted bool `json:"-"`
}

// Identity is who a kubeconfig is to the API server.
type Identity struct {
	Expectation
	// AuthUser and AuthGroups are the SelfSubjectReview's answer.
	AuthUser   string   `json:"authenticatedUser,omitempty"`
	AuthGroups []string `json:"authenticatedGroups,omitempty"`
	// Access are Needs with the API server's answers.
	Access []Access `json:"access,omitempty"`
	// Error says why the API server could not be asked.
	Error string `json:"error,omitempty"`
}

// Expectations are the plan's kubeconfigs, each with who its client
// certificate says it is and what its component needs, at the paths
// pathOf gives (the resolved file; "" skips it).
func Expectations(plan *catalog.Plan, pathOf func(catalog.KubeconfigSpec) string) []Expectation {
	var out []Expectation
	for _, k := range plan.Kubeconfigs {
		p := pathOf(k)
		if p == "" {
			continue
		}
		out = append(out, Expect(plan, k, p))
	}
	return out
}

// Expect is the expectation of one kubeconfig of the plan.
func Expect(plan *catalog.Plan, k catalog.KubeconfigSpec, path string) Expectation {
	x := Expectation{Path: path, Kubeconfig: k.Name, User: k.User}
	if c, ok := plan.Cert(k.Cert); ok {
		x.User, x.Groups = c.Profile.Subject.CommonName, slices.Clone(c.Profile.Subject.Organization)
	}
	x.MayBeMaster = slices.Contains(x.Groups, Masters)
	x.Needs = needs(x.User, x.Groups)
	return x
}

// needs are a few permissions that prove a component can work: the
// default RBAC grants them to these users ("Using RBAC Authorization",
// core component roles), the Node authorizer to a node its own Node.
func needs(user string, groups []string) []Access {
	switch {
	case user == "system:kube-scheduler":
		return []Access{{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "kube-scheduler"}}
	case user == "system:kube-controller-manager":
		return []Access{{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: "kube-system", Name: "kube-controller-manager"}}
	case user == "system:kube-proxy":
		return []Access{{Verb: "list", Group: "discovery.k8s.io", Resource: "endpointslices"}}
	case strings.HasPrefix(user, "system:node:"):
		return []Access{{Verb: "get", Resource: "nodes", Name: strings.TrimPrefix(user, "system:node:")}}
	case slices.Contains(groups, Masters) || slices.Contains(groups, "kubeadm:cluster-admins"):
		return []Access{{Verb: "*", Group: "*", Resource: "*"}}
	}
	return nil
}

// CheckKubeconfigs asks the API server, with a client built from each
// kubeconfig file itself, who it is (SelfSubjectReview) and whether it may
// do what its component needs (SelfSubjectAccessReview), all at once,
// each within timeout. It reports the identities and the findings: another
// user or groups than the plan's, a missing permission, system:masters
// outside admin and super-admin. A kubeconfig the API server cannot be
// asked with (unreachable, refused) is a warning.
func CheckKubeconfigs(ctx context.Context, xs []Expectation, timeout time.Duration) (ids []Identity, findings, warnings []Finding) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ids = make([]Identity, len(xs))
	var wg sync.WaitGroup
	for i, x := range xs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = ask(ctx, x, timeout)
		}()
	}
	wg.Wait()
	for _, id := range ids {
		f, w := judge(id)
		findings, warnings = append(findings, f...), append(warnings, w...)
	}
	return ids, findings, warnings
}

func ask(ctx context.Context, x Expectation, timeout time.Duration) Identity {
	id := Identity{Expectation: x}
	cfg, err := restConfig(x)
	if err != nil {
		id.Error = fmt.Sprintf("load %s: %v", x.Path, err)
		return id
	}
	cfg.Timeout = timeout
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		id.Error = fmt.Sprintf("client for %s: %v", x.Path, err)
		return id
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	review, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		id.Error = fmt.Sprintf("SelfSubjectReview at %s: %v", cfg.Host, err)
		return id
	}
	id.AuthUser, id.AuthGroups = review.Status.UserInfo.Username, review.Status.UserInfo.Groups
	for _, a := range x.Needs {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authzv1.ResourceAttributes{Verb: a.Verb, Group: a.Group, Resource: a.Resource, Namespace: a.Namespace, Name: a.Name},
		}}, metav1.CreateOptions{})
		if err != nil {
			id.Error = fmt.Sprintf("SelfSubjectAccessReview (%s) at %s: %v", a, cfg.Host, err)
			return id
		}
		a.Allowed = r.Status.Allowed
		id.Access = append(id.Access, a)
	}
	return id
}

// restConfig is the client configuration of a kubeconfig file, as
// clientcmd.BuildConfigFromFlags makes it, except that the file and every
// file its current context names (certificate-authority, client-certificate,
// client-key, tokenFile) are read through the store's reader: regular
// files only, at most 1 MiB, so a FIFO or /dev/zero named by a kubeconfig
// is an error, not a hang or an unbounded read. An exec plugin or auth
// provider runs only for a Trusted kubeconfig: checking a directory never
// runs a command one of its files names.
func restConfig(x Expectation) (*rest.Config, error) {
	cfg, err := kubeconfig.Load(x.Path)
	if err != nil {
		return nil, err
	}
	if err := clientcmd.ResolveLocalPaths(cfg); err != nil {
		return nil, err
	}
	read := func(p string) ([]byte, error) { return store.ReadFile(p, store.KeyPolicy{Insecure: true}) }
	if ctx, ok := cfg.Contexts[cfg.CurrentContext]; ok {
		if cl, ok := cfg.Clusters[ctx.Cluster]; ok && cl.CertificateAuthority != "" {
			data, err := read(cl.CertificateAuthority)
			if err != nil {
				return nil, fmt.Errorf("cluster %s: certificate-authority: %w", ctx.Cluster, err)
			}
			cl.CertificateAuthorityData, cl.CertificateAuthority = data, ""
		}
		if u, ok := cfg.AuthInfos[ctx.AuthInfo]; ok {
			if !x.Trusted && (u.Exec != nil || u.AuthProvider != nil) {
				return nil, fmt.Errorf("user %s: an exec plugin or auth provider, not run for a kubeconfig of the directory (name the file with --kubeconfig to run it)", ctx.AuthInfo)
			}
			for _, f := range []struct {
				name string
				path *string
				data *[]byte
			}{{"client-certificate", &u.ClientCertificate, &u.ClientCertificateData}, {"client-key", &u.ClientKey, &u.ClientKeyData}} {
				if *f.path == "" {
					continue
				}
				data, err := read(*f.path)
				if err != nil {
					return nil, fmt.Errorf("user %s: %s: %w", ctx.AuthInfo, f.name, err)
				}
				*f.data, *f.path = data, ""
			}
			if u.TokenFile != "" {
				data, err := read(u.TokenFile)
				if err != nil {
					return nil, fmt.Errorf("user %s: tokenFile: %w", ctx.AuthInfo, err)
				}
				u.Token, u.TokenFile = strings.TrimSpace(string(data)), ""
			}
		}
	}
	return clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
}

// judge compares an identity with its expectation.
func judge(id Identity) (findings, warnings []Finding) {
	subj := filepath.Base(id.Path)
	if id.Error != "" {
		return nil, []Finding{{Subject: subj, Message: "not checked: " + id.Error}}
	}
	renew := ""
	if id.Kubeconfig != "" {
		renew = "kubepki certs renew " + id.Kubeconfig + " --from-spec"
	}
	if id.Kubeconfig != "" && id.AuthUser != id.User {
		findings = append(findings, Finding{Subject: subj, Message: fmt.Sprintf("authenticates as %s, want %s", id.AuthUser, id.User), Fix: renew})
	}
	if id.Kubeconfig != "" {
		var missing, extra []string
		for _, g := range id.Groups {
			if !slices.Contains(id.AuthGroups, g) {
				missing = append(missing, g)
			}
		}
		for _, g := range id.AuthGroups {
			if g != "system:authenticated" && !slices.Contains(id.Groups, g) {
				extra = append(extra, g)
			}
		}
		if len(missing)+len(extra) > 0 {
			findings = append(findings, Finding{Subject: subj, Message: fmt.Sprintf("is in groups %s, want %s", strings.Join(id.AuthGroups, ","), strings.Join(append(slices.Clone(id.Groups), "system:authenticated"), ",")), Fix: renew})
		}
	}
	if slices.Contains(id.AuthGroups, Masters) && !id.MayBeMaster {
		findings = append(findings, Finding{Subject: subj, Message: fmt.Sprintf("%s is in %s, which bypasses RBAC: only admin and super-admin kubeconfigs may be", id.AuthUser, Masters), Fix: renew})
	}
	for _, a := range id.Access {
		if !a.Allowed {
			findings = append(findings, Finding{Subject: subj, Message: fmt.Sprintf("%s may not %s, which its component needs", id.AuthUser, a),
				Fix: "check the RBAC binding of " + id.User + " (kubectl auth can-i " + a.Verb + " " + a.Resource + ")"})
		}
	}
	return findings, warnings
}

// Match finds the plan's kubeconfig a file stands for: by its file name
// (the plan's), else by the user entry
// of its current context, which names the identity it was made for. A
// file that matches neither is not in the plan.
func Match(plan *catalog.Plan, path string) (catalog.KubeconfigSpec, bool) {
	base := filepath.Base(path)
	for _, k := range plan.Kubeconfigs {
		if k.File == base {
			return k, true
		}
	}
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		return catalog.KubeconfigSpec{}, false
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return catalog.KubeconfigSpec{}, false
	}
	for _, k := range plan.Kubeconfigs {
		if k.User == ctx.AuthInfo {
			return k, true
		}
	}
	return catalog.KubeconfigSpec{}, false
}
