package inspect

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// describeKubeconfig describes the certificates and keys embedded in a
// kubeconfig: each cluster's certificate-authority-data, each user's
// client-certificate-data and client-key-data, clusters and users in name
// order. isKubeconfig is false when data does not parse as a kubeconfig
// or has neither clusters nor users; err is set when it says it is one
// (kind: Config) but does not parse, or embeds nothing to describe.
func describeKubeconfig(name string, data []byte, now time.Time) (objs []Object, isKubeconfig bool, err error) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		if bytes.Contains(data, []byte("kind: Config")) {
			return nil, true, fmt.Errorf("parse kubeconfig: %w", err)
		}
		return nil, false, nil
	}
	if cfg == nil || len(cfg.Clusters) == 0 && len(cfg.AuthInfos) == 0 {
		return nil, false, nil
	}
	var files []string
	field := func(where string, data []byte, kind Kind) {
		if len(data) == 0 {
			return
		}
		found, _ := describePEM(name, data, now)
		if len(found) == 0 {
			objs = append(objs, Object{File: name, Location: where, Kind: kind, Error: "no PEM block in the data"})
			return
		}
		for _, o := range found {
			if len(found) > 1 {
				o.Location = where + ", " + o.Location
			} else {
				o.Location = where
			}
			objs = append(objs, o)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.Clusters)) {
		c := cfg.Clusters[n]
		if c == nil {
			continue
		}
		field(fmt.Sprintf("cluster %q: certificate-authority-data", n), c.CertificateAuthorityData, KindCertificate)
		if c.CertificateAuthority != "" {
			files = append(files, fmt.Sprintf("cluster %q: certificate-authority %s", n, c.CertificateAuthority))
		}
	}
	for _, n := range slices.Sorted(maps.Keys(cfg.AuthInfos)) {
		u := cfg.AuthInfos[n]
		if u == nil {
			continue
		}
		field(fmt.Sprintf("user %q: client-certificate-data", n), u.ClientCertificateData, KindCertificate)
		field(fmt.Sprintf("user %q: client-key-data", n), u.ClientKeyData, KindPrivateKey)
		if u.ClientCertificate != "" {
			files = append(files, fmt.Sprintf("user %q: client-certificate %s", n, u.ClientCertificate))
		}
		if u.ClientKey != "" {
			files = append(files, fmt.Sprintf("user %q: client-key %s", n, u.ClientKey))
		}
	}
	if len(objs) == 0 {
		msg := "kubeconfig embeds no certificate or key"
		if len(files) > 0 {
			msg += " (it refers to files: " + strings.Join(files, "; ") + "; inspect those)"
		}
		return nil, true, errors.New(msg)
	}
	return objs, true, nil
}
