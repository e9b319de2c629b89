package cluster

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Limits and assumptions of ImportOpenSSL.
const (
	// maxConfSize bounds the input; a real ca.conf is a few KiB.
	maxConfSize = 1 << 20
	// maxLineLen bounds a logical line, and so every name and value.
	maxLineLen = 8 << 10
	// maxSANEntries bounds the subjectAltName items and @section references
	// read over a whole file, however sections share or chain them.
	maxSANEntries = 1 << 12
	// maxDNAttrs bounds the attributes read from a subject (a DN section
	// shared by many certificates is read once, but copied to each).
	maxDNAttrs = 64
	// maxShown bounds how much of a name or value a finding quotes.
	maxShown = 64
	// apiServerPort is the port of the imported endpoint (KTHW's).
	apiServerPort = "6443"
	// assumedServiceCIDR is used when the API server names no service IP.
	assumedServiceCIDR = "10.32.0.0/24"
	// fallbackControlPlane names the control-plane node when no SAN does.
	fallbackControlPlane = "server"
)

// componentCNs are the identities kubepki's profiles issue themselves.
var componentCNs = map[string]bool{
	"admin":                          true,
	"system:kube-proxy":              true,
	"system:kube-scheduler":          true,
	"system:kube-controller-manager": true,
	"kubernetes":                     true,
	"kube-api-server":                true,
	"kube-apiserver":                 true,
	"service-accounts":               true,
}

// apiServerIDs are the CNs or section names of the API server certificate.
var apiServerIDs = []string{"kubernetes", "kube-api-server", "kube-apiserver"}

// componentBindings says, for the components whose permissions come from a
// default ClusterRoleBinding to their user (the CN), which binding that is
// and which O kubepki gives them.
var componentBindings = map[string]struct{ component, binding, group string }{
	"system:kube-scheduler":          {"kube-scheduler", "system:kube-scheduler", "system:kube-scheduler"},
	"system:kube-controller-manager": {"kube-controller-manager", "system:kube-controller-manager", "system:kube-controller-manager"},
	"system:kube-proxy":              {"kube-proxy", "system:node-proxier", "system:node-proxier"},
}

// dnAttrs maps distinguished-name keys, lower-cased, to short names.
var dnAttrs = map[string]string{
	"cn": "CN", "commonname": "CN",
	"o": "O", "organizationname": "O",
	"c": "C", "countryname": "C",
	"st": "ST", "s": "ST", "stateorprovincename": "ST",
	"l": "L", "localityname": "L",
}

// nodeSection matches section names that look like a kubelet's.
var nodeSection = regexp.MustCompile(`(?i)^(node|worker|minion)[-_.]?[0-9a-z-]*$`)

// loopback is the address every hard-way serving certificate names anyway.
var loopback = netip.MustParseAddr("127.0.0.1")

// ImportOpenSSL reads an openssl config in the style of the ca.conf of
// "Kubernetes the Hard Way" (a [req] section for the CA; per certificate a
// section naming its distinguished_name and req_extensions sections) and
// returns the equivalent defaulted spec together with findings that lint
// the ca.conf. name is the file's name: errors and each finding's Field
// start with it ("ca.conf [kube-scheduler_distinguished_name] O").
//
// What a ca.conf does not say (validity, key algorithm, pod CIDR, node IPs
// that are not SANs) keeps kubepki's defaults. The input is untrusted: its
// size is bounded, $variables are left unexpanded, .include is not
// followed, and the subjectAltName work is bounded however @section
// references share or loop. An error means the data is no usable ca.conf
// at all (a reference to a section it does not have included: openssl
// refuses that too); a returned spec may still fail Validate.
func ImportOpenSSL(data []byte, name string) (*Cluster, []Finding, error) {
	cf, fs, err := parseConf(data, name)
	if err != nil {
		return nil, nil, err
	}
	im := &importer{
		conf: cf, budget: maxSANEntries, reported: map[Finding]bool{},
		refs: map[*entry]*section{}, subjects: map[*section]*subject{}, exts: map[*section]*extensions{},
		nodes: map[string]int{}, users: map[string]bool{},
	}
	for _, f := range fs {
		im.add(f.Severity, f.Field, "%s", f.Message)
	}
	ca, certs := im.certs()
	if ca == nil && len(certs) == 0 {
		return nil, nil, fmt.Errorf("%s: no certificate sections: want a [req] section or sections with a distinguished_name", name)
	}
	c := &Cluster{}
	if ca != nil {
		c.Subject = Subject{Country: ca.country, Province: ca.province, Locality: ca.locality, Organization: first(ca.groups())}
		im.lintNetscape(ca)
	} else {
		im.warn(name, "no usable [req] section: the CA's subject is unknown, so the imported spec has no subject defaults")
	}
	var api *cert
	for _, ct := range certs {
		im.lintNetscape(ct)
		cn := ct.cnValue()
		switch {
		case ct.isNode():
			im.addNode(c, ct)
		case cn == "":
			im.warn(im.dnField(ct, ct.cn, "CN"), "no CN: the certificate names no Kubernetes user; ignored")
		case componentCNs[cn]:
			im.lintGroups(ct)
			im.lintAdmin(ct)
		case ct.eku != nil && ct.client && !ct.server:
			im.lintGroups(ct)
			im.addUser(c, ct)
		default:
			im.warn(im.at(ct.section.name, ""), "CN %q is neither a node, a Kubernetes component nor a user (extendedKeyUsage = clientAuth only); ignored", clip(cn))
		}
		if api == nil && ct.isAPIServer() {
			api = ct
		}
	}
	if im.missing != nil {
		return nil, nil, im.missing
	}
	host := im.apiServer(c, api)
	im.addControlPlane(c, host, api)
	SetDefaults(c)
	return c, im.findings, nil
}

// importer turns a parsed ca.conf into a spec, collecting findings. It
// reads each DN and extension section once, however many certificates
// share it, so the work stays linear in the input.
type importer struct {
	conf     *conf
	findings []Finding
	reported map[Finding]bool
	budget   int                      // SAN entries that may still be read
	refs     map[*entry]*section      // section references resolved
	subjects map[*section]*subject    // DN sections read
	exts     map[*section]*extensions // extension sections read
	nodes    map[string]int           // node name → index in the spec's nodes
	users    map[string]bool          // user names imported
	missing  error                    // the first reference to a missing section
}

func (im *importer) add(sev Severity, field, format string, args ...any) {
	f := Finding{Severity: sev, Field: field, Message: fmt.Sprintf(format, args...)}
	if !im.reported[f] {
		im.reported[f] = true
		im.findings = append(im.findings, f)
	}
}

func (im *importer) warn(field, format string, args ...any) {
	im.add(Warning, field, format, args...)
}

func (im *importer) errorf(field, format string, args ...any) {
	im.add(Error, field, format, args...)
}

// at names a ca.conf location: "ca.conf [section] key".
func (im *importer) at(section, key string) string {
	return strings.TrimSpace(fmt.Sprintf("%s [%s] %s", im.conf.file, shown(section), shown(key)))
}

func (im *importer) atEntry(e *entry) string { return im.at(e.section, e.key) }

// dnField locates a DN entry of ct, or where key would be if e is nil.
func (im *importer) dnField(ct *cert, e *entry, key string) string {
	if e != nil {
		return im.atEntry(e)
	}
	return im.at(ct.dn.name, key)
}

// sanField locates ct's subjectAltName, or its section if it has none.
func (im *importer) sanField(ct *cert) string {
	if ct.san != nil {
		return im.atEntry(ct.san)
	}
	return im.at(ct.section.name, "")
}

// value returns an entry's value, warning that a $variable in it is used
// as written.
func (im *importer) value(e *entry) string {
	if e.expands {
		im.warn(im.atEntry(e), "$variable references are not expanded; %q is used as written", clip(e.value))
	}
	return e.value
}

// get looks key up in s and then, as openssl does, in the default section.
func (im *importer) get(s *section, key string) *entry {
	if e := s.get(key); e != nil {
		return e
	}
	return im.conf.sections["default"].get(key)
}

// ref resolves an entry naming a section, warning if there is none.
func (im *importer) ref(e *entry) *section {
	if s, ok := im.refs[e]; ok {
		return s
	}
	s := im.conf.lookup(im.value(e))
	if s == nil {
		im.missingSection(e, e.value)
	}
	im.refs[e] = s
	return s
}

// missingSection records a reference to a section the file does not
// have. openssl refuses such a file (req: "unable to find section", x509:
// "Error Loading extension section"), so the import fails on the first one
// rather than guessing what the author meant.
func (im *importer) missingSection(e *entry, name string) {
	if im.missing == nil {
		im.missing = fmt.Errorf("%s: names section [%s], which does not exist (openssl refuses such a file)", im.atEntry(e), shown(strings.TrimSpace(name)))
	}
}

// cert is one certificate as a ca.conf describes it.
type cert struct {
	section *section // the section openssl req -section names ([req] for the CA)
	*subject
	*extensions
	sans []san
}

// subject is what a DN section says.
type subject struct {
	dn       *section
	cn       *entry // the last CN, as Go reads it
	orgs     []*entry
	country  string
	province string
	locality string
}

// extensions is what an extension section says.
type extensions struct {
	ext    *section // nil if the certificate has none
	eku    *entry   // extendedKeyUsage, or nil
	client bool     // eku allows clientAuth
	server bool     // eku allows serverAuth
	san    *entry   // subjectAltName, or nil
	linted bool     // nsCertType and nsComment were checked
}

// san is one subjectAltName: a DNS name or an IP, and where it is.
type san struct {
	dns  string
	ip   netip.Addr
	from *entry
}

func (ct *cert) cnValue() string {
	if ct.cn == nil {
		return ""
	}
	return ct.cn.value
}

func (ct *cert) groups() []string {
	var out []string
	for _, e := range ct.orgs {
		out = append(out, e.value)
	}
	return out
}

// isNode reports whether the certificate is a kubelet's: its CN says so, or
// its section is named like a node and it is both client and server.
func (ct *cert) isNode() bool {
	cn := ct.cnValue()
	if strings.HasPrefix(cn, "system:node:") {
		return true
	}
	return nodeSection.MatchString(ct.section.name) && ct.client && ct.server && !componentCNs[cn]
}

func (ct *cert) isAPIServer() bool {
	return slices.Contains(apiServerIDs, ct.cnValue()) || slices.Contains(apiServerIDs, strings.ToLower(ct.section.name))
}

// certs finds the CA ([req]) and the certificate sections, in file order.
// A certificate section names a distinguished_name, req_extensions or
// x509_extensions section, or holds a CN itself without being some other
// section's distinguished name.
func (im *importer) certs() (ca *cert, certs []*cert) {
	req := im.conf.lookup("req")
	owners := map[*section]*section{} // certificate section → its DN section
	used := map[*section]bool{}
	for _, s := range im.conf.order {
		if s.name == "default" {
			continue
		}
		if s == req || s.get("distinguished_name") != nil || s.get("req_extensions") != nil || s.get("x509_extensions") != nil {
			dn := im.dnSection(s)
			owners[s] = dn
			used[dn] = true
		}
	}
	for _, s := range im.conf.order {
		dn, owner := owners[s]
		switch {
		case owner && dn == nil:
			im.warn(im.at(s.name, ""), "no distinguished name: no distinguished_name section and no CN; ignored")
			continue
		case !owner && (used[s] || s.name == "default" || !hasCN(s)):
			continue
		case !owner:
			dn = s
		}
		ct := im.readCert(s, dn)
		if s == req {
			ca = ct
		} else {
			certs = append(certs, ct)
		}
	}
	return ca, certs
}

// dnSection finds a certificate's DN: the section its distinguished_name
// names, else one named <section>_distinguished_name, <section>_dn or
// <section>_req_distinguished_name, else the section itself if it has a CN.
func (im *importer) dnSection(s *section) *section {
	if e := im.get(s, "distinguished_name"); e != nil {
		if dn := im.ref(e); dn != nil {
			return dn
		}
	}
	for _, suffix := range []string{"_distinguished_name", "_dn", "_req_distinguished_name"} {
		if dn := im.conf.lookup(s.name + suffix); dn != nil {
			return dn
		}
	}
	if hasCN(s) {
		return s
	}
	return nil
}

func hasCN(s *section) bool {
	return slices.ContainsFunc(s.entries, func(e *entry) bool {
		attr, _ := dnAttr(e.key)
		return attr == "CN"
	})
}

// readCert reads a certificate's subject, extensions and SANs.
func (im *importer) readCert(s, dn *section) *cert {
	ct := &cert{section: s, subject: im.subject(dn), extensions: &extensions{}}
	for _, key := range []string{"req_extensions", "x509_extensions"} {
		if e := im.get(s, key); e != nil {
			if ext := im.ref(e); ext != nil {
				ct.extensions = im.extensions(ext)
				break
			}
		}
	}
	if ct.san != nil {
		ct.sans = im.sans(ct.san, map[*section]bool{})
	}
	return ct
}

// subject reads CN, O, C, ST and L from a DN section. Keys may be short or
// long names and may carry openssl's "0." prefixes for repeated attributes;
// in prompt style (commonName = question, commonName_default = answer) the
// _default values are the subject. Every O is a group.
func (im *importer) subject(dn *section) *subject {
	if sub := im.subjects[dn]; sub != nil {
		return sub
	}
	sub := &subject{dn: dn}
	useDefaults := slices.ContainsFunc(dn.entries, func(e *entry) bool {
		attr, isDefault := dnAttr(e.key)
		return attr != "" && isDefault
	})
	n := 0
	for _, e := range dn.entries {
		attr, isDefault := dnAttr(e.key)
		if attr == "" || isDefault != useDefaults || e.value == "" {
			continue
		}
		if n++; n > maxDNAttrs {
			im.warn(im.atEntry(e), "more than %d subject attributes; the rest are ignored", maxDNAttrs)
			break
		}
		v := im.value(e)
		switch attr {
		case "CN":
			sub.cn = e
		case "O":
			sub.orgs = append(sub.orgs, e)
		case "C":
			sub.country = v
		case "ST":
			sub.province = v
		case "L":
			sub.locality = v
		}
	}
	im.subjects[dn] = sub
	return sub
}

// dnAttr returns the attribute a DN key sets, and whether it is a prompt
// style _default value.
func dnAttr(key string) (attr string, isDefault bool) {
	k := strings.TrimPrefix(key, "+")
	if i := strings.IndexAny(k, ".:,"); i >= 0 && i+1 < len(k) {
		k = k[i+1:]
	}
	k, isDefault = strings.CutSuffix(k, "_default")
	return dnAttrs[strings.ToLower(k)], isDefault
}

// extensions reads the extended key usage of an extension section and
// finds its subjectAltName.
func (im *importer) extensions(ext *section) *extensions {
	if x := im.exts[ext]; x != nil {
		return x
	}
	x := &extensions{ext: ext, eku: ext.get("extendedKeyUsage"), san: ext.get("subjectAltName")}
	if x.eku != nil {
		x.client, x.server = parseEKU(im.value(x.eku))
	}
	im.exts[ext] = x
	return x
}

// parseEKU reports whether an extendedKeyUsage value allows TLS client and
// server authentication, by short name, long name or OID.
func parseEKU(v string) (client, server bool) {
	for u := range strings.SplitSeq(v, ",") {
		switch strings.ToLower(strings.TrimSpace(u)) {
		case "clientauth", "tls web client authentication", "1.3.6.1.5.5.7.3.2":
			client = true
		case "serverauth", "tls web server authentication", "1.3.6.1.5.5.7.3.1":
			server = true
		case "anyextendedkeyusage", "2.5.29.37.0":
			client, server = true, true
		}
	}
	return client, server
}

// sans resolves a subjectAltName: inline "DNS:a, IP:1.2.3.4" items and
// @section references whose keys are DNS.n and IP.n. seen holds the
// sections already read for this certificate, so a cycle ends.
func (im *importer) sans(e *entry, seen map[*section]bool) []san {
	var out []san
	for item := range strings.SplitSeq(im.value(e), ",") {
		if !im.spend(e) {
			break
		}
		item = strings.TrimSpace(item)
		switch {
		case item == "" || strings.EqualFold(item, "critical"):
		case item[0] == '@':
			out = append(out, im.sanSection(e, item[1:], seen)...)
		default:
			kind, v, ok := strings.Cut(item, ":")
			if !ok {
				im.warn(im.atEntry(e), "%q is not TYPE:value (DNS:name, IP:address); ignored", clip(item))
				continue
			}
			out = im.addSAN(out, kind, v, e)
		}
	}
	return out
}

func (im *importer) sanSection(from *entry, name string, seen map[*section]bool) []san {
	s := im.conf.lookup(name)
	switch {
	case s == nil:
		im.missingSection(from, name)
		return nil
	case seen[s]:
		im.warn(im.atEntry(from), "@%s refers back to a section already read (a reference cycle); ignored", shown(s.name))
		return nil
	}
	seen[s] = true
	var out []san
	for _, e := range s.entries {
		if !im.spend(e) {
			break
		}
		if ref, ok := strings.CutPrefix(strings.TrimSpace(e.value), "@"); ok {
			out = append(out, im.sanSection(e, ref, seen)...)
			continue
		}
		kind, _, _ := strings.Cut(e.key, ".")
		out = im.addSAN(out, kind, im.value(e), e)
	}
	return out
}

// spend takes one SAN entry from the budget, reporting once when it is out.
func (im *importer) spend(e *entry) bool {
	im.budget--
	if im.budget == -1 {
		im.warn(im.atEntry(e), "more than %d subjectAltName entries in the file; the rest are ignored", maxSANEntries)
	}
	return im.budget >= 0
}

// addSAN appends a DNS or IP SAN; other kinds (email, URI) do not matter to
// Kubernetes and are skipped.
func (im *importer) addSAN(out []san, kind, v string, from *entry) []san {
	v = strings.TrimSpace(v)
	switch strings.ToUpper(strings.TrimSpace(kind)) {
	case "DNS":
		if v != "" {
			out = append(out, san{dns: strings.ToLower(v), from: from})
		}
	case "IP":
		ip, err := netip.ParseAddr(v)
		if err != nil || ip.Zone() != "" {
			im.warn(im.atEntry(from), "%q is not an IP address; ignored", clip(v))
			return out
		}
		out = append(out, san{ip: ip.Unmap(), from: from})
	}
	return out
}

// lintNetscape reports nsCertType and nsComment once per extension section.
func (im *importer) lintNetscape(ct *cert) {
	if ct.ext == nil || im.exts[ct.ext].linted {
		return
	}
	im.exts[ct.ext].linted = true
	var keys []string
	var at *entry
	for _, k := range []string{"nsCertType", "nsComment"} {
		if e := ct.ext.get(k); e != nil {
			keys = append(keys, e.key)
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
	if t := ct.ext.get("nsCertType"); t != nil && ct.server && !strings.Contains(strings.ToLower(t.value), "server") {
		msg += fmt.Sprintf(". OpenSSL, though, enforces nsCertType: with %q, OpenSSL-based TLS clients (curl, Python) reject this certificate when it serves TLS (\"unsuitable certificate purpose\") despite its serverAuth", clip(t.value))
	}
	im.warn(im.atEntry(at), "%s", msg)
}

// lintGroups reports O values with a doubled "system:" prefix.
func (im *importer) lintGroups(ct *cert) {
	cn := ct.cnValue()
	for _, o := range ct.orgs {
		rest, ok := strings.CutPrefix(o.value, "system:system:")
		if !ok {
			continue
		}
		want := "system:" + rest
		msg := fmt.Sprintf("group %q exists nowhere in Kubernetes, so nothing is granted through it", clip(o.value))
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
		if o.value == "system:masters" {
			im.warn(im.atEntry(o), "system:masters bypasses RBAC and authorization webhooks, and this certificate cannot be revoked short of rotating the CA; keep it for bootstrapping and bind the cluster-admin ClusterRole to a named user or group for daily use")
		}
	}
}

// addNode adds (or merges into) a worker node, checking that the
// certificate is one the Node authorizer and NodeRestriction accept.
func (im *importer) addNode(c *Cluster, ct *cert) {
	cn := ct.cnValue()
	name, ok := strings.CutPrefix(cn, "system:node:")
	if !ok {
		name = strings.ToLower(ct.section.name)
		im.errorf(im.dnField(ct, ct.cn, "CN"), "CN is %q, but the Node authorizer and NodeRestriction only recognise a kubelet as the user system:node:<nodeName>; the imported spec uses CN=system:node:%s", clip(cn), shown(name))
	}
	if groups := ct.groups(); !slices.Contains(groups, "system:nodes") {
		im.errorf(im.dnField(ct, first(ct.orgs), "O"), "O is %q, not system:nodes: the Node authorizer only authorizes kubelets in the group system:nodes, so this kubelet would be denied; the imported spec uses O=system:nodes", clip(strings.Join(groups, ", ")))
	}
	if ct.eku != nil && !ct.client {
		im.errorf(im.atEntry(ct.eku), "lacks clientAuth: the kubelet authenticates to the API server with this certificate, and the API server rejects a client certificate without clientAuth; the imported spec's kubelet certificate has both")
	}
	if ct.eku != nil && !ct.server {
		im.errorf(im.atEntry(ct.eku), "lacks serverAuth: the API server, verifying the kubelet's serving certificate for logs, exec and port-forward (--kubelet-certificate-authority), rejects one without serverAuth; the imported spec's kubelet certificate has both")
	}
	n := Node{Name: name, Roles: []Role{RoleWorker}}
	for _, s := range ct.sans {
		switch {
		case s.ip.IsValid() && s.ip != loopback:
			n.IPs = appendNew(n.IPs, s.ip.String())
		case s.dns != "" && s.dns != name:
			n.Hostnames = appendNew(n.Hostnames, s.dns)
		}
	}
	if i, ok := im.nodes[name]; ok {
		c.Nodes[i].IPs = appendNew(c.Nodes[i].IPs, n.IPs...)
		c.Nodes[i].Hostnames = appendNew(c.Nodes[i].Hostnames, n.Hostnames...)
		return
	}
	im.nodes[name] = len(c.Nodes)
	c.Nodes = append(c.Nodes, n)
}

// addUser adds a client-only certificate's identity as a User.
func (im *importer) addUser(c *Cluster, ct *cert) {
	cn := ct.cnValue()
	if im.users[cn] {
		im.warn(im.dnField(ct, ct.cn, "CN"), "user %q was already imported from an earlier section; this one is ignored", clip(cn))
		return
	}
	im.users[cn] = true
	c.Users = append(c.Users, User{Name: cn, Groups: ct.groups()})
}

// apiServer derives dnsDomain, serviceCIDR, the endpoint and the extra SANs
// from the API server certificate. It returns the endpoint's DNS name, from
// which the control-plane node is named, or "".
func (im *importer) apiServer(c *Cluster, api *cert) string {
	c.DNSDomain = DefaultDNSDomain
	if api == nil {
		im.warn(im.conf.file, "no kube-api-server section (CN = kubernetes): the imported spec assumes serviceCIDR %s", assumedServiceCIDR)
		c.ServiceCIDR = assumedServiceCIDR
		return ""
	}
	for _, s := range api.sans {
		if d, ok := strings.CutPrefix(s.dns, "kubernetes.default.svc."); ok && strings.Contains(d, ".") && len(validation.IsDNS1123Subdomain(d)) == 0 {
			c.DNSDomain = d
			break
		}
	}
	fqdn := "kubernetes.default.svc." + c.DNSDomain
	standard := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster", fqdn}
	var dns []string
	var ips []san
	hasFQDN, typo := false, false
	for _, s := range api.sans {
		switch {
		case s.ip.IsValid():
			if s.ip != loopback {
				ips = append(ips, s)
			}
		case slices.Contains(standard, s.dns):
			hasFQDN = hasFQDN || s.dns == fqdn
		case strings.HasPrefix(s.dns, "kubernetes.svc."):
			typo = true
			im.warn(im.atEntry(s.from), "%s is not a name of the kubernetes Service, which is kubernetes.default.svc.<domain> (<service>.<namespace>.svc.<domain>); the imported spec drops it and uses %s", shown(s.dns), fqdn)
		default:
			dns = appendNew(dns, s.dns)
		}
	}
	if !hasFQDN && !typo {
		im.warn(im.sanField(api), "lacks %s, the name Pods resolve for the kubernetes Service; the imported spec computes and adds it", fqdn)
	}

	svc, ips := pickServiceIP(ips)
	if svc == nil {
		im.warn(im.sanField(api), "names no service IP (the ClusterIP of the kubernetes Service, which Pods dial); the imported spec assumes serviceCIDR %s and adds its first address", assumedServiceCIDR)
		c.ServiceCIDR = assumedServiceCIDR
	} else {
		p := serviceCIDR(svc.ip)
		c.ServiceCIDR = p.String()
		if p.Addr().Next() == svc.ip {
			im.warn(im.atEntry(svc.from), "the SANs name the service IP %s but not the service CIDR's prefix length; the imported spec assumes %s: set serviceCIDR to kube-apiserver's --service-cluster-ip-range if it differs", svc.ip, p)
		} else {
			im.warn(im.atEntry(svc.from), "%s is not the first address of the assumed serviceCIDR %s, so the imported spec's kubernetes Service IP is %s: set serviceCIDR to kube-apiserver's --service-cluster-ip-range", svc.ip, p, p.Addr().Next())
		}
	}

	host := ""
	i := slices.IndexFunc(dns, func(d string) bool { return !strings.HasPrefix(d, "kubernetes") && !strings.HasPrefix(d, "*") })
	if i < 0 {
		i = slices.IndexFunc(dns, func(d string) bool { return !strings.HasPrefix(d, "*") })
	}
	if i >= 0 {
		host = dns[i]
		dns = slices.Delete(dns, i, i+1)
		c.APIServer.Endpoint = net.JoinHostPort(host, apiServerPort)
	} else if len(ips) > 0 {
		c.APIServer.Endpoint = net.JoinHostPort(ips[0].ip.String(), apiServerPort)
		ips = ips[1:]
	}
	c.APIServer.ExtraSANs = dns
	for _, s := range ips {
		c.APIServer.ExtraSANs = appendNew(c.APIServer.ExtraSANs, s.ip.String())
	}
	return host
}

// pickServiceIP picks the kubernetes Service's ClusterIP among the API
// server's IP SANs that are not loopback: the first that is the first
// address of its assumed service CIDR, else the first. It returns the
// others too.
func pickServiceIP(ips []san) (*san, []san) {
	usable := func(s san) bool { return !s.ip.IsLoopback() && !s.ip.IsUnspecified() }
	i := slices.IndexFunc(ips, func(s san) bool { return usable(s) && serviceCIDR(s.ip).Addr().Next() == s.ip })
	if i < 0 {
		i = slices.IndexFunc(ips, usable)
	}
	if i < 0 {
		return nil, ips
	}
	svc := ips[i]
	return &svc, slices.Delete(slices.Clone(ips), i, i+1)
}

// serviceCIDR assumes the service CIDR that a service IP is in: its /24,
// or /112 for IPv6.
func serviceCIDR(ip netip.Addr) netip.Prefix {
	bits := 24
	if ip.Is6() {
		bits = 112
	}
	p, _ := ip.Prefix(bits)
	return p
}

// addControlPlane makes the node named by the endpoint's first DNS label
// (server.kubernetes.local → server) a control plane, adding it first.
func (im *importer) addControlPlane(c *Cluster, host string, api *cert) {
	name, _, _ := strings.Cut(host, ".")
	if host == "" || len(validation.IsDNS1123Label(name)) > 0 {
		field := im.conf.file
		if api != nil {
			field = im.sanField(api)
		}
		name, host = fallbackControlPlane, ""
		if c.APIServer.Endpoint == "" {
			c.APIServer.Endpoint = net.JoinHostPort(name, apiServerPort)
		}
		im.warn(field, "cannot tell the control-plane node from the kube-api-server SANs; the imported spec adds node %q with the control-plane role and endpoint %s", name, c.APIServer.Endpoint)
	}
	var hostnames []string
	if host != "" && host != name {
		hostnames = []string{host}
	}
	if i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name }); i >= 0 {
		c.Nodes[i].Roles = append([]Role{RoleControlPlane}, c.Nodes[i].Roles...)
		c.Nodes[i].Hostnames = appendNew(c.Nodes[i].Hostnames, hostnames...)
		return
	}
	c.Nodes = append([]Node{{Name: name, Roles: []Role{RoleControlPlane}, Hostnames: hostnames}}, c.Nodes...)
}

// appendNew appends the items not yet in list.
func appendNew(list []string, items ...string) []string {
	for _, s := range items {
		if !slices.Contains(list, s) {
			list = append(list, s)
		}
	}
	return list
}

func first[T any](list []T) T {
	var zero T
	if len(list) == 0 {
		return zero
	}
	return list[0]
}

// clip shortens a value for quoting (%q) in a finding.
func clip(s string) string {
	if len(s) <= maxShown {
		return s
	}
	return strings.ToValidUTF8(s[:maxShown], "") + "…"
}

// shown is a clipped name for a finding, its control characters replaced
// so that the finding stays one line.
func shown(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, clip(s))
}

// conf is a parsed openssl config file.
type conf struct {
	file     string
	order    []*section          // in order of first appearance
	sections map[string]*section // by name; "default" holds what precedes any header
	folded   map[string]*section // by lower-cased name, first seen
}

// section is one [section]; a repeated header adds to it.
type section struct {
	name    string
	entries []*entry          // in order of first appearance
	keys    map[string]*entry // by key
	folded  map[string]*entry // by lower-cased key, first seen
}

// entry is one key = value; a repeated key overwrites it, as in openssl.
type entry struct {
	section, key, value string
	expands             bool // the value holds an unexpanded $variable
}

// lookup finds a section by name, exactly or else ignoring case.
func (cf *conf) lookup(name string) *section {
	name = strings.TrimSpace(name)
	if s := cf.sections[name]; s != nil {
		return s
	}
	return cf.folded[strings.ToLower(name)]
}

// section returns the named section, creating it.
func (cf *conf) section(name string) *section {
	if s := cf.sections[name]; s != nil {
		return s
	}
	s := &section{name: name, keys: map[string]*entry{}, folded: map[string]*entry{}}
	cf.sections[name] = s
	cf.order = append(cf.order, s)
	if _, ok := cf.folded[strings.ToLower(name)]; !ok {
		cf.folded[strings.ToLower(name)] = s
	}
	return s
}

// get finds key exactly or else ignoring case; s may be nil.
func (s *section) get(key string) *entry {
	if s == nil {
		return nil
	}
	if e := s.keys[key]; e != nil {
		return e
	}
	return s.folded[strings.ToLower(key)]
}

func (s *section) set(key, value string, expands bool) {
	e := &entry{section: s.name, key: key, value: value, expands: expands}
	if old := s.keys[key]; old != nil {
		*old = *e
		return
	}
	s.keys[key] = e
	s.entries = append(s.entries, e)
	if _, ok := s.folded[strings.ToLower(key)]; !ok {
		s.folded[strings.ToLower(key)] = e
	}
}

// parseConf parses an openssl config: [section] headers, key = value lines,
// # and ; comments, quotes, backslash escapes and line continuations.
// Malformed lines and .include are reported as warnings located by line.
func parseConf(data []byte, file string) (*conf, []Finding, error) {
	if len(data) > maxConfSize {
		return nil, nil, fmt.Errorf("%s: %d bytes is over the %d-byte limit for a ca.conf", file, len(data), maxConfSize)
	}
	if err := checkText(data, file); err != nil {
		return nil, nil, err
	}
	cf := &conf{file: file, sections: map[string]*section{}, folded: map[string]*section{}}
	cur := cf.section("default")
	var fs []Finding
	warn := func(line int, format string, args ...any) {
		fs = append(fs, Finding{Severity: Warning, Field: fmt.Sprintf("%s:%d", file, line), Message: fmt.Sprintf(format, args...)})
	}
	lines := strings.Split(strings.TrimPrefix(string(data), "\ufeff"), "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		s := strings.TrimLeft(logicalLine(lines, &i), " \t")
		switch {
		case len(s) > maxLineLen:
			warn(n, "line longer than %d bytes; ignored", maxLineLen)
		case strings.TrimSpace(s) == "" || s[0] == '#' || s[0] == ';':
		case s[0] == '[':
			name, rest, ok := strings.Cut(s[1:], "]")
			name, rest = strings.TrimSpace(name), strings.TrimSpace(rest)
			if !ok || name == "" || rest != "" && rest[0] != '#' && rest[0] != ';' {
				warn(n, "malformed section header %q; ignored", clip(s))
				continue
			}
			cur = cf.section(name)
		case isDirective(s, ".include"):
			warn(n, ".include is not followed: settings in the included file are not imported")
		case isDirective(s, ".pragma"):
			// Parser options; they matter only to $variable expansion.
		default:
			key, raw, ok := strings.Cut(s, "=")
			key = strings.TrimSpace(key)
			if !ok || key == "" || strings.ContainsAny(key, " \t\"'#;") {
				warn(n, "malformed line: want [section], key = value or a # comment; ignored")
				continue
			}
			value, expands, ok := unquote(raw)
			if !ok {
				warn(n, "unterminated quote; the value runs to the end of the line")
			}
			target := cur
			if sec, k, ok := strings.Cut(key, "::"); ok && sec != "" && k != "" {
				target, key = cf.section(sec), k
			}
			target.set(key, value, expands)
		}
	}
	return cf, fs, nil
}

// checkText rejects binary data: a NUL byte or invalid UTF-8.
func checkText(data []byte, file string) error {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == 0 || r == utf8.RuneError && size == 1 {
			return fmt.Errorf("%s:%d: binary data (a NUL byte or invalid UTF-8 at byte %d), not an openssl config", file, 1+bytes.Count(data[:i], []byte("\n")), i)
		}
		i += size
	}
	return nil
}

// logicalLine returns lines[*i] joined with the lines that trailing
// backslashes continue it onto, advancing *i past them.
func logicalLine(lines []string, i *int) string {
	line := strings.TrimSuffix(lines[*i], "\r")
	if !continued(line) {
		return line
	}
	var b strings.Builder
	for continued(line) && *i+1 < len(lines) {
		b.WriteString(line[:len(line)-1])
		*i++
		line = strings.TrimSuffix(lines[*i], "\r")
	}
	if continued(line) {
		line = line[:len(line)-1]
	}
	b.WriteString(line)
	return b.String()
}

// continued reports whether a line ends in an unescaped backslash.
func continued(line string) bool {
	n := len(line) - len(strings.TrimRight(line, `\`))
	return n%2 == 1
}

func isDirective(s, d string) bool {
	rest, ok := strings.CutPrefix(s, d)
	return ok && (rest == "" || strings.ContainsRune(" \t=", rune(rest[0])))
}

// unquote reads a value as openssl does: "..." and '...' quote, a backslash
// escapes the next character (\n, \r, \t and \b outside quotes are control
// characters), # or ; outside quotes starts a comment, and unquoted
// whitespace around the value is dropped. It reports whether the value
// holds an unescaped $variable, and false if a quote is left open.
func unquote(raw string) (value string, expands, ok bool) {
	raw = strings.TrimLeft(raw, " \t")
	var b strings.Builder
	keep := 0 // b's length up to the last quoted or escaped byte
	for i := 0; i < len(raw); i++ {
		switch ch := raw[i]; {
		case ch == '#' || ch == ';':
			i = len(raw)
		case ch == '\\' && i+1 < len(raw):
			i++
			b.WriteByte(unescape(raw[i]))
			keep = b.Len()
		case ch == '"' || ch == '\'':
			end := i + 1
			for end < len(raw) && raw[end] != ch {
				if raw[end] == '\\' && end+1 < len(raw) {
					end++
				}
				b.WriteByte(raw[end])
				end++
			}
			if end == len(raw) {
				return strings.TrimRight(b.String(), " \t"), expands, false
			}
			i, keep = end, b.Len()
		default:
			expands = expands || ch == '$'
			b.WriteByte(ch)
		}
	}
	v := b.String()
	return v[:keep] + strings.TrimRight(v[keep:], " \t"), expands, true
}

func unescape(ch byte) byte {
	switch ch {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	}
	return ch
}
