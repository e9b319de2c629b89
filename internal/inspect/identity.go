package inspect

import (
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"strings"
)

// Severity grades a Note.
type Severity string

// Note severities.
const (
	// Info explains what a user name or group grants.
	Info Severity = "info"
	// Warning flags an identity that does not do what it seems meant to,
	// or that grants more than it should.
	Warning Severity = "warning"
)

// Note explains one part of an identity.
type Note struct {
	Severity Severity `json:"severity"`
	// About is the part explained: `user "admin"`, `group "system:masters"`.
	About string `json:"about"`
	Text  string `json:"text"`
}

func (n Note) String() string { return n.About + ": " + n.Text }

// Identity is who kube-apiserver's x509 authenticator takes the holder of
// a client certificate to be, provided its issuer is one of the API
// server's client CAs (--client-ca-file): the user is the subject's CN, the
// groups its O values. Every authenticated request is also in
// system:authenticated.
type Identity struct {
	User   string   `json:"user"`
	Groups []string `json:"groups"`
	// UID is the subject's UID attribute, which kube-apiserver uses as the
	// user's UID when the AllowParsingUserUIDFromCertAuth feature is on.
	UID string `json:"uid,omitempty"`
	// CredentialID is the authentication.kubernetes.io/credential-id extra
	// kube-apiserver records for requests made with the certificate (in
	// audit logs, for instance); certificates only.
	CredentialID string `json:"credentialId,omitempty"`
	// Notes say what the user and groups mean to a default cluster, in the
	// order user, then groups as the certificate lists them.
	Notes []Note `json:"notes,omitempty"`
}

// Well-known user and group names (k8s.io/apiserver/pkg/authentication/user
// and the default RBAC policy).
const (
	groupMasters         = "system:masters"
	groupNodes           = "system:nodes"
	groupAuthenticated   = "system:authenticated"
	groupUnauthenticated = "system:unauthenticated"
	groupMonitoring      = "system:monitoring"
	groupServiceAccounts = "system:serviceaccounts"
	groupBootstrappers   = "system:bootstrappers"
	groupKubeadmAdmins   = "kubeadm:cluster-admins"
	userNodePrefix       = "system:node:"
	userSAPrefix         = "system:serviceaccount:"
	userAnonymous        = "system:anonymous"
	userScheduler        = "system:kube-scheduler"
	userControllerMgr    = "system:kube-controller-manager"
	userKubeProxy        = "system:kube-proxy"
	typoPrefix           = "system:system:"
)

// identityOf returns the identity a subject gives, with notes.
func identityOf(n pkix.Name) *Identity {
	id := &Identity{User: n.CommonName, Groups: slices.Clone(n.Organization)}
	if id.Groups == nil {
		id.Groups = []string{}
	}
	for _, atv := range n.Names {
		if atv.Type.String() == "0.9.2342.19200300.100.1.1" {
			if s, ok := atv.Value.(string); ok {
				id.UID = s
			}
		}
	}
	id.Notes = append(userNotes(id.User, id.Groups), groupNotes(id.User, id.Groups)...)
	return id
}

// userNotes explains the user name.
func userNotes(u string, groups []string) []Note {
	about := fmt.Sprintf("user %q", u)
	note := func(sev Severity, format string, args ...any) []Note {
		return []Note{{Severity: sev, About: about, Text: fmt.Sprintf(format, args...)}}
	}
	inNodes := slices.Contains(groups, groupNodes)
	switch {
	case u == "":
		return []Note{{Severity: Warning, About: "user", Text: "no CN: kube-apiserver does not authenticate a client certificate without a common name"}}
	case strings.HasPrefix(u, typoPrefix):
		return note(Warning, "typo for %q (doubled system: prefix): a user nothing binds", strings.TrimPrefix(u, "system:"))
	case strings.HasPrefix(u, userNodePrefix):
		node := strings.TrimPrefix(u, userNodePrefix)
		switch {
		case !inNodes:
			return note(Warning, "looks like node %q, but O lacks %s: the Node authorizer will not recognise it as a node", node, groupNodes)
		case node == "":
			return note(Warning, "names no node: the Node authorizer will deny it")
		}
		return note(Info, "a kubelet: authorized by the Node authorizer and limited by NodeRestriction to node %s", node)
	case strings.HasPrefix(u, userSAPrefix):
		parts := strings.Split(strings.TrimPrefix(u, userSAPrefix), ":")
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return note(Warning, "not a valid service account user name (%sNAMESPACE:NAME)", userSAPrefix)
		}
		return note(Info, "takes the name of service account %s/%s: RBAC bindings to that service account apply (its groups %s and %s:%s only if O lists them)", parts[0], parts[1], groupServiceAccounts, groupServiceAccounts, parts[0])
	case u == userScheduler:
		return note(Info, "kube-scheduler: the default ClusterRoleBindings system:kube-scheduler and system:volume-scheduler grant it the ClusterRoles of the same names")
	case u == userControllerMgr:
		return note(Info, "kube-controller-manager: the default ClusterRoleBinding system:kube-controller-manager grants it the ClusterRole of the same name")
	case u == userKubeProxy:
		return note(Info, "kube-proxy: the default ClusterRoleBinding system:node-proxier grants it the ClusterRole system:node-proxier")
	case u == userAnonymous:
		return note(Warning, "the name of unauthenticated requests: grants what anonymous requests get")
	}
	return nil
}

// groupNotes explains each group, in the certificate's order.
func groupNotes(u string, groups []string) []Note {
	var out []Note
	for i, g := range groups {
		add := func(sev Severity, format string, args ...any) {
			out = append(out, Note{Severity: sev, About: fmt.Sprintf("group %q", g), Text: fmt.Sprintf(format, args...)})
		}
		if slices.Contains(groups[:i], g) {
			add(Warning, "listed more than once")
			continue
		}
		switch {
		case g == groupMasters:
			add(Warning, "bypasses RBAC and all authorization webhooks: full, irrevocable cluster admin (only expiry or replacing the CA ends it)")
		case g == groupNodes:
			if !strings.HasPrefix(u, userNodePrefix) {
				add(Warning, "the Node authorizer will not recognise it: it needs CN %s<nodeName>, and no default RBAC binding names this group", userNodePrefix)
			}
		case g == groupAuthenticated:
			add(Info, "every authenticated request is in it anyway: listing it changes nothing")
		case g == groupUnauthenticated:
			add(Warning, "the group of anonymous requests: grants what anonymous requests get")
		case g == groupServiceAccounts:
			add(Info, "the group of all service accounts: bindings to every service account apply (by default system:service-account-issuer-discovery)")
		case strings.HasPrefix(g, groupServiceAccounts+":"):
			add(Info, "the group of the service accounts in namespace %s: bindings to all of them apply", strings.TrimPrefix(g, groupServiceAccounts+":"))
		case g == groupMonitoring:
			add(Info, "the default ClusterRoleBinding system:monitoring grants it read access to /metrics, /livez, /readyz and /healthz")
		case g == groupBootstrappers || strings.HasPrefix(g, groupBootstrappers+":"):
			add(Info, "a bootstrap-token group: where kubeadm's bindings exist, may request node client certificates that are approved automatically")
		case g == groupKubeadmAdmins:
			add(Info, "kubeadm binds it to cluster-admin (ClusterRoleBinding kubeadm:cluster-admins): full cluster admin, revocable by deleting that binding")
		case strings.HasPrefix(g, typoPrefix):
			add(Warning, "typo for %q (doubled system: prefix): a group nothing binds", strings.TrimPrefix(g, "system:"))
		case strings.HasPrefix(g, "system:"):
			add(Info, "no default binding names this group")
		}
	}
	return out
}
