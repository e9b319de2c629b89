package csr

import (
	"cmp"
	"net/url"
	"slices"
	"time"

	certv1 "k8s.io/api/certificates/v1"
)

// Summary is what `kubepki csr list` shows of one CertificateSigningRequest:
// the columns of `kubectl get csr`, and the subject and SANs decoded from
// spec.request. Its JSON form is the documented output of
// `kubepki csr list -o json|yaml`: fields may be added, never renamed or
// removed. Every list is present (empty, never null), so scripts need no
// null checks.
type Summary struct {
	// Name is metadata.name.
	Name string `json:"name"`
	// CreationTimestamp is metadata.creationTimestamp (the table's AGE).
	CreationTimestamp time.Time `json:"creationTimestamp"`
	// SignerName is spec.signerName.
	SignerName string `json:"signerName"`
	// Requestor is spec.username: who created the object, as the API
	// server authenticated them (not what the request asks to be).
	Requestor string `json:"requestor"`
	// ExpirationSeconds is spec.expirationSeconds, the requested duration
	// (the table's REQUESTEDDURATION); absent when the signer's default
	// applies.
	ExpirationSeconds *int32 `json:"expirationSeconds,omitempty"`
	// Usages is spec.usages.
	Usages []string `json:"usages"`
	// Condition is kubectl's CONDITION column: Pending, Approved or Denied,
	// then ",Failed" if a signer gave up and ",Issued" if status.certificate
	// is set (e.g. "Approved,Issued").
	Condition string `json:"condition"`
	// Pending is true when the request has no Approved, Denied or Failed
	// condition: someone still has to decide on it.
	Pending bool `json:"pending"`
	// CommonName and Organizations are the subject's CN and O of the
	// PKCS#10 request: for a client certificate, the user name and groups
	// it would authenticate as.
	CommonName    string   `json:"commonName"`
	Organizations []string `json:"organizations"`
	// DNSNames, IPAddresses, EmailAddresses and URIs are the request's
	// subjectAltNames.
	DNSNames       []string `json:"dnsNames"`
	IPAddresses    []string `json:"ipAddresses"`
	EmailAddresses []string `json:"emailAddresses"`
	URIs           []string `json:"uris"`
	// RequestError says why spec.request could not be decoded; the subject
	// and SAN fields are then empty. Absent when it decoded.
	RequestError string `json:"requestError,omitempty"`
}

// Summarize decodes c for a listing. spec.request is untrusted (whoever may
// create CSRs chooses its bytes): one that does not parse is reported in
// RequestError, never as a failure of the listing.
func Summarize(c *certv1.CertificateSigningRequest) Summary {
	s := Summary{
		Name:              c.Name,
		CreationTimestamp: c.CreationTimestamp.UTC(),
		SignerName:        c.Spec.SignerName,
		Requestor:         c.Spec.Username,
		Usages:            []string{},
		Condition:         ConditionColumn(c),
		Pending:           Pending(c),
		Organizations:     []string{},
		DNSNames:          []string{},
		IPAddresses:       []string{},
		EmailAddresses:    []string{},
		URIs:              []string{},
	}
	if c.Spec.ExpirationSeconds != nil {
		v := *c.Spec.ExpirationSeconds
		s.ExpirationSeconds = &v
	}
	for _, u := range c.Spec.Usages {
		s.Usages = append(s.Usages, string(u))
	}
	req, err := ParseRequest(c.Spec.Request)
	if err != nil {
		s.RequestError = err.Error()
		return s
	}
	s.CommonName = req.Subject.CommonName
	s.Organizations = append(s.Organizations, req.Subject.Organization...)
	s.DNSNames = append(s.DNSNames, req.DNSNames...)
	for _, ip := range req.IPAddresses {
		s.IPAddresses = append(s.IPAddresses, ip.String())
	}
	s.EmailAddresses = append(s.EmailAddresses, req.EmailAddresses...)
	s.URIs = append(s.URIs, urlStrings(req.URIs)...)
	return s
}

func urlStrings(us []*url.URL) []string {
	out := make([]string, 0, len(us))
	for _, u := range us {
		out = append(out, u.String())
	}
	return out
}

// Pending reports whether nobody has decided on the CSR yet: no Approved,
// Denied or Failed condition. It is what `kubectl get csr` shows as Pending
// and what an operator still has to look at.
func Pending(c *certv1.CertificateSigningRequest) bool {
	return !HasCondition(c, certv1.CertificateApproved) && !Denied(c) && !Failed(c)
}

// ConditionColumn is the CONDITION column of `kubectl get csr` (kubectl's
// extractCSRStatus): Denied, else Approved, else Pending; then ",Failed" when
// a signer gave up and ",Issued" when status.certificate is set. Unlike
// State, it keeps every fact, as kubectl does ("Approved,Failed").
func ConditionColumn(c *certv1.CertificateSigningRequest) string {
	s := "Pending"
	switch {
	case Denied(c):
		s = "Denied"
	case HasCondition(c, certv1.CertificateApproved):
		s = "Approved"
	}
	if Failed(c) {
		s += ",Failed"
	}
	if Issued(c) {
		s += ",Issued"
	}
	return s
}

// SortSummaries orders a listing by name, as the API server lists objects.
func SortSummaries(s []Summary) {
	slices.SortFunc(s, func(a, b Summary) int { return cmp.Compare(a.Name, b.Name) })
}
