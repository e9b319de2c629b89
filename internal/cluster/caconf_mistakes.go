package cluster

import (
	"fmt"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/opensslconf"
)

// The named mistakes: what a ca.conf may declare that kubepki does not
// keep, each with a finding that says why and what the imported spec does
// instead. Everything else the ca.conf declares is kept.
//
//   - nsCertType and nsComment: legacy Netscape extensions Go ignores
//     (lintNetscape).
//   - an O of system:system:<group>: a group that exists nowhere
//     (lintGroups); the component's own group is used.
//   - a kubelet certificate whose CN is not system:node:<name>, whose O is
//     not system:nodes, or that lacks clientAuth or serverAuth (addNode).
//   - a component client certificate without clientAuth
//     (lintComponentUsage).
//   - kubernetes.svc.<domain> among the API server's SANs, which names no
//     Service; kubernetes.default.svc.<domain> is used (apiServer).
//
// admin in system:masters is no mistake but gets a warning (lintAdmin).

// lintNetscape reports nsCertType and nsComment once per extension section.
func (im *importer) lintNetscape(ct *cert) {
	if ct.ext == nil || im.exts[ct.ext].linted {
		return
	}
	im.exts[ct.ext].linted = true
	var keys []string
	var at *opensslconf.Entry
	for _, k := range []string{"nsCertType", "nsComment"} {
		if e := ct.ext.GetFold(k); e != nil {
			keys = append(keys, e.Key)
			if at == nil {
				at = e
			}
		}
	}
	if at == nil {
		return
	}
	msg := keys[0] + " is a legacy Netscape extension that Go, and so every Kubernetes component, ignores; kubepki omits it"
	if len(keys) == 2 {
		msg = keys[0] + " and " + keys[1] + " are legacy Netscape extensions that Go, and so every Kubernetes component, ignores; kubepki omits them"
	}
	if t := ct.ext.GetFold("nsCertType"); t != nil && ct.server && !strings.Contains(strings.ToLower(t.Value), "server") {
		msg += fmt.Sprintf(". OpenSSL, though, enforces nsCertType: with %q, OpenSSL-based TLS clients (curl, Python) reject this certificate when it serves TLS (\"unsuitable certificate purpose\") despite its serverAuth", clip(t.Value))
	}
	im.warn(im.atEntry(at), "%s", msg)
}

// lintGroups reports O values with a doubled "system:" prefix.
func (im *importer) lintGroups(ct *cert) {
	cn := ct.cnValue()
	for _, o := range ct.orgs {
		rest, ok := strings.CutPrefix(o.Value, "system:system:")
		if !ok {
			continue
		}
		want := "system:" + rest
		msg := fmt.Sprintf("group %q exists nowhere in Kubernetes, so nothing is granted through it", clip(o.Value))
		switch b, known := componentBindings[cn]; {
		case known:
			msg += fmt.Sprintf("; %s still works because the default ClusterRoleBinding %s binds the user %s (the CN), not a group; the imported spec uses O=%s", b.component, b.binding, cn, b.group)
		case componentCNs[cn]:
			msg += fmt.Sprintf("; did you mean %q? kubepki's built-in %s certificate sets its own O", clip(want), cn)
		default:
			msg += fmt.Sprintf("; did you mean %q? The imported user keeps the group as written", clip(want))
		}
		im.warn(im.atEntry(o), "%s", msg)
	}
}

// lintAdmin warns about the admin certificate's system:masters group.
func (im *importer) lintAdmin(ct *cert) {
	if ct.cnValue() != "admin" {
		return
	}
	for _, o := range ct.orgs {
		if o.Value == "system:masters" {
			im.warn(im.atEntry(o), "system:masters bypasses RBAC and authorization webhooks, and this certificate cannot be revoked short of rotating the CA; keep it for bootstrapping and bind the cluster-admin ClusterRole to a named user or group for daily use")
		}
	}
}

// lintComponentUsage reports a component client certificate that lacks
// clientAuth: the component authenticates to the API server with it.
// The service-account key pair's certificate is never used for TLS.
func (im *importer) lintComponentUsage(ct *cert) {
	cn := ct.cnValue()
	if ct.eku == nil || ct.client || cn == "service-accounts" || slices.Contains(apiServerIDs, cn) {
		return
	}
	im.errorf(im.atEntry(ct.eku), "lacks clientAuth: %s authenticates to the API server with this certificate, and the API server rejects a client certificate without clientAuth; the imported spec's certificate has it", cn)
}
