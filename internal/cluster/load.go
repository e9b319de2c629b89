package cluster

import (
	_ "embed"
	"fmt"
	"os"
	"strings"
	"time"

	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

//go:embed default.yaml
var defaultYAML []byte

// Default values filled in by SetDefaults.
const (
	DefaultDNSDomain    = "cluster.local"
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
)

// DefaultYAML returns the embedded default spec as written, comments included.
func DefaultYAML() []byte { return append([]byte(nil), defaultYAML...) }

// Default returns the embedded default cluster, defaulted.
func Default() *Cluster {
	c, err := Parse(defaultYAML, "embedded default")
	if err != nil {
		panic(err) // the embedded spec is tested; this cannot happen in a release
	}
	return c
}

// Load reads, strictly decodes and defaults the spec in path — a kubepki
// Cluster, or kubeadm's configuration (ParseKubeadm, for this machine). It
// does not validate: call Validate for that.
func Load(path string) (*Cluster, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if IsKubeadmConfig(data) {
		kc, err := ParseKubeadm(data, path, LocalHost())
		if err != nil {
			return nil, err
		}
		return kc.Cluster, nil
	}
	return Parse(data, path)
}

// Parse strictly decodes a spec: an unknown or misspelled field is an error
// that names it. name is used in errors.
func Parse(data []byte, name string) (*Cluster, error) {
	// sigs.k8s.io/json, as the Kubernetes API server uses it: field names
	// match case-sensitively (encoding/json would take "serviceCidr" for
	// serviceCIDR), and unknown or duplicate fields are errors with a path.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var c Cluster
	strictErrs, err := kjson.UnmarshalStrict(js, &c, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s: %s", name, strings.Join(msgs, "; "))
	}
	if c.APIVersion != APIVersion || c.Kind != Kind {
		return nil, fmt.Errorf("%s: apiVersion/kind is %q/%q, want %q/%q", name, c.APIVersion, c.Kind, APIVersion, Kind)
	}
	SetDefaults(&c)
	return &c, nil
}

// SetDefaults fills in what the spec leaves out.
func SetDefaults(c *Cluster) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.Name == "" {
		c.Name = "kubernetes"
	}
	if c.DNSDomain == "" {
		c.DNSDomain = DefaultDNSDomain
	}
	if c.KeyAlgorithm == "" {
		c.KeyAlgorithm = "ECDSA-P256"
	}
	if c.Validity.CA.Duration == 0 {
		c.Validity.CA = Duration{DefaultCAValidity}
	}
	if c.Validity.Leaf.Duration == 0 {
		c.Validity.Leaf = Duration{DefaultLeafValidity}
	}
	for i := range c.Nodes {
		if len(c.Nodes[i].Roles) == 0 {
			c.Nodes[i].Roles = []Role{RoleWorker}
		}
	}
}

// Marshal renders the spec as YAML.
func Marshal(c *Cluster) ([]byte, error) {
	return yaml.Marshal(c)
}
