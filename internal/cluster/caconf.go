package cluster

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"

	"kubepki.dev/kubepki/internal/opensslconf"
)

// Limits and assumptions of ImportOpenSSL.
const (
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
// What the ca.conf declares is kept, unless it is one of the named
// mistakes (caconf_mistakes.go), which each get a finding saying what the
// imported spec does instead: serverAuth and SANs of component
// certificates go into the spec's components. What a ca.conf does not say
// (validity, key algorithm, pod CIDR, node IPs that are not SANs) keeps
// kubepki's defaults.
//
// The file is read by package opensslconf, as openssl reads it; the
// subjectAltName work is bounded however @section references share or
// loop. An error means the data is no usable ca.conf at all: one openssl
// refuses too (a reference to a section it does not have, a $variable with
// no value) or one with no certificate sections. A returned spec may still
// fail Validate.
func ImportOpenSSL(data []byte, name string) (*Cluster, []Finding, error) {
	cf, diags, err := opensslconf.Parse(data, name)
	if err != nil {
		return nil, nil, err
	}
	im := &importer{
		conf: cf, budget: maxSANEntries, reported: map[Finding]bool{},
		refs: map[*opensslconf.Entry]*opensslconf.Section{}, subjects: map[*opensslconf.Section]*subject{}, exts: map[*opensslconf.Section]*extensions{},
		nodes: map[string]int{}, users: map[string]bool{},
	}
	for _, d := range diags {
		im.warn(fmt.Sprintf("%s:%d", name, d.Line), "%s", d.Message)
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
			im.addComponent(c, ct)
		case ct.eku != nil && ct.client && !ct.server:
			im.lintGroups(ct)
			im.addUser(c, ct)
		default:
			im.warn(im.at(ct.section.Name, ""), "CN %q is neither a node, a Kubernetes component nor a user (extendedKeyUsage = clientAuth only); ignored", clip(cn))
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
	conf     *opensslconf.File
	findings []Finding
	reported map[Finding]bool
	budget   int                                         // SAN entries that may still be read
	refs     map[*opensslconf.Entry]*opensslconf.Section // section references resolved
	subjects map[*opensslconf.Section]*subject           // DN sections read
	exts     map[*opensslconf.Section]*extensions        // extension sections read
	nodes    map[string]int                              // node name → index in the spec's nodes
	users    map[string]bool                             // user names imported
	missing  error                                       // the first reference to a missing section
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
	return strings.TrimSpace(fmt.Sprintf("%s [%s] %s", im.conf.Name, shown(section), shown(key)))
}

func (im *importer) atEntry(e *opensslconf.Entry) string { return im.at(e.Section, e.Key) }

// dnField locates a DN entry of ct, or where key would be if e is nil.
func (im *importer) dnField(ct *cert, e *opensslconf.Entry, key string) string {
	if e != nil {
		return im.atEntry(e)
	}
	return im.at(ct.dn.Name, key)
}

// sanField locates ct's subjectAltName, or its section if it has none.
func (im *importer) sanField(ct *cert) string {
	if ct.san != nil {
		return im.atEntry(ct.san)
	}
	return im.at(ct.section.Name, "")
}

// value returns an entry's value, warning that a $ENV:: reference in it is
// used as written.
func (im *importer) value(e *opensslconf.Entry) string {
	if e.Unexpanded {
		im.warn(im.atEntry(e), "$ENV:: references name the environment of whoever runs openssl and are not expanded; %q is used as written", clip(e.Value))
	}
	return e.Value
}

// get looks key up in s and then, as openssl does, in the default section.
func (im *importer) get(s *opensslconf.Section, key string) *opensslconf.Entry {
	if e := s.GetFold(key); e != nil {
		return e
	}
	return im.conf.Default().GetFold(key)
}

// ref resolves an entry naming a section, recording an error if there is
// none.
func (im *importer) ref(e *opensslconf.Entry) *opensslconf.Section {
	if s, ok := im.refs[e]; ok {
		return s
	}
	s := im.conf.Section(strings.TrimSpace(im.value(e)))
	if s == nil {
		im.missingSection(e, e.Value)
	}
	im.refs[e] = s
	return s
}

// missingSection records a reference to a section the file does not
// have. openssl refuses such a file (req: "unable to find section", x509:
// "Error Loading extension section"), so the import fails on the first one
// rather than guessing what the author meant. Section names are
// case-sensitive in openssl; a name that differs only in case gets a hint.
func (im *importer) missingSection(e *opensslconf.Entry, name string) {
	if im.missing != nil {
		return
	}
	name = strings.TrimSpace(name)
	hint := ""
	if s := im.conf.SectionFold(name); s != nil {
		hint = fmt.Sprintf("; openssl's section names are case-sensitive: did you mean [%s]?", shown(s.Name))
	}
	im.missing = fmt.Errorf("%s:%d: [%s] %s names section [%s], which does not exist (openssl refuses such a file)%s",
		im.conf.Name, e.Line, shown(e.Section), shown(e.Key), shown(name), hint)
}

// cert is one certificate as a ca.conf describes it.
type cert struct {
	section *opensslconf.Section // the section openssl req -section names ([req] for the CA)
	*subject
	*extensions
	sans []san
}

// subject is what a DN section says.
type subject struct {
	dn       *opensslconf.Section
	cn       *opensslconf.Entry // the last CN, as Go reads it
	orgs     []*opensslconf.Entry
	country  string
	province string
	locality string
}

// extensions is what an extension section says.
type extensions struct {
	ext    *opensslconf.Section // nil if the certificate has none
	eku    *opensslconf.Entry   // extendedKeyUsage, or nil
	client bool                 // eku allows clientAuth
	server bool                 // eku allows serverAuth
	san    *opensslconf.Entry   // subjectAltName, or nil
	linted bool                 // nsCertType and nsComment were checked
}

// san is one subjectAltName: a DNS name or an IP, and where it is.
type san struct {
	dns  string
	ip   netip.Addr
	from *opensslconf.Entry
}

func (ct *cert) cnValue() string {
	if ct.cn == nil {
		return ""
	}
	return ct.cn.Value
}

func (ct *cert) groups() []string {
	var out []string
	for _, e := range ct.orgs {
		out = append(out, e.Value)
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
	return nodeSection.MatchString(ct.section.Name) && ct.client && ct.server && !componentCNs[cn]
}

func (ct *cert) isAPIServer() bool {
	return slices.Contains(apiServerIDs, ct.cnValue()) || slices.Contains(apiServerIDs, strings.ToLower(ct.section.Name))
}

// certs finds the CA ([req]) and the certificate sections, in file order.
// A certificate section names a distinguished_name, req_extensions or
// x509_extensions section, or holds a CN itself without being some other
// section's distinguished name.
func (im *importer) certs() (ca *cert, certs []*cert) {
	req := im.conf.Section("req")
	owners := map[*opensslconf.Section]*opensslconf.Section{} // certificate section → its DN section
	used := map[*opensslconf.Section]bool{}
	for _, s := range im.conf.Sections() {
		if s.Name == "default" {
			continue
		}
		if s == req || s.GetFold("distinguished_name") != nil || s.GetFold("req_extensions") != nil || s.GetFold("x509_extensions") != nil {
			dn := im.dnSection(s)
			owners[s] = dn
			used[dn] = true
		}
	}
	for _, s := range im.conf.Sections() {
		dn, owner := owners[s]
		switch {
		case owner && dn == nil:
			im.warn(im.at(s.Name, ""), "no distinguished name: no distinguished_name section and no CN; ignored")
			continue
		case !owner && (used[s] || s.Name == "default" || !hasCN(s)):
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
func (im *importer) dnSection(s *opensslconf.Section) *opensslconf.Section {
	if e := im.get(s, "distinguished_name"); e != nil {
		if dn := im.ref(e); dn != nil {
			return dn
		}
	}
	for _, suffix := range []string{"_distinguished_name", "_dn", "_req_distinguished_name"} {
		if dn := im.conf.SectionFold(s.Name + suffix); dn != nil {
			return dn
		}
	}
	if hasCN(s) {
		return s
	}
	return nil
}

func hasCN(s *opensslconf.Section) bool {
	return slices.ContainsFunc(s.Entries(), func(e *opensslconf.Entry) bool {
		attr, _ := dnAttr(e.Key)
		return attr == "CN"
	})
}

// readCert reads a certificate's subject, extensions and SANs.
func (im *importer) readCert(s, dn *opensslconf.Section) *cert {
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
		ct.sans = im.sans(ct.san, map[*opensslconf.Section]bool{})
	}
	return ct
}

// subject reads CN, O, C, ST and L from a DN section. Keys may be short or
// long names and may carry openssl's "0." prefixes for repeated attributes;
// in prompt style (commonName = question, commonName_default = answer) the
// _default values are the subject. Every O is a group.
func (im *importer) subject(dn *opensslconf.Section) *subject {
	if sub := im.subjects[dn]; sub != nil {
		return sub
	}
	sub := &subject{dn: dn}
	useDefaults := slices.ContainsFunc(dn.Entries(), func(e *opensslconf.Entry) bool {
		attr, isDefault := dnAttr(e.Key)
		return attr != "" && isDefault
	})
	n := 0
	for _, e := range dn.Entries() {
		attr, isDefault := dnAttr(e.Key)
		if attr == "" || isDefault != useDefaults || e.Value == "" {
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
func (im *importer) extensions(ext *opensslconf.Section) *extensions {
	if x := im.exts[ext]; x != nil {
		return x
	}
	x := &extensions{ext: ext, eku: ext.GetFold("extendedKeyUsage"), san: ext.GetFold("subjectAltName")}
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
func (im *importer) sans(e *opensslconf.Entry, seen map[*opensslconf.Section]bool) []san {
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

func (im *importer) sanSection(from *opensslconf.Entry, name string, seen map[*opensslconf.Section]bool) []san {
	s := im.conf.Section(strings.TrimSpace(name))
	switch {
	case s == nil:
		im.missingSection(from, name)
		return nil
	case seen[s]:
		im.warn(im.atEntry(from), "@%s refers back to a section already read (a reference cycle); ignored", shown(s.Name))
		return nil
	}
	seen[s] = true
	var out []san
	for _, e := range s.Entries() {
		if !im.spend(e) {
			break
		}
		if ref, ok := strings.CutPrefix(strings.TrimSpace(e.Value), "@"); ok {
			out = append(out, im.sanSection(e, ref, seen)...)
			continue
		}
		kind, _, _ := strings.Cut(e.Key, ".")
		out = im.addSAN(out, kind, im.value(e), e)
	}
	return out
}

// spend takes one SAN entry from the budget, reporting once when it is out.
func (im *importer) spend(e *opensslconf.Entry) bool {
	im.budget--
	if im.budget == -1 {
		im.warn(im.atEntry(e), "more than %d subjectAltName entries in the file; the rest are ignored", maxSANEntries)
	}
	return im.budget >= 0
}

// addSAN appends a DNS or IP SAN; other kinds (email, URI) do not matter to
// Kubernetes and are skipped.
func (im *importer) addSAN(out []san, kind, v string, from *opensslconf.Entry) []san {
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
