package inspect

import (
	"fmt"
)

// Bounds that keep Link near-linear on hostile input, such as thousands of
// copies of one certificate.
const (
	// maxMatches is how many matching objects one object lists by name.
	maxMatches = 10
	// maxIssuerChecks is how many same-named candidate issuers are tried
	// per certificate.
	maxIssuerChecks = 8
)

// Link relates the objects of one or more Describe calls, in place. Objects
// holding the same key pair name each other in Matches (a private key its
// certificates, requests and public keys, and they it; certificates that
// merely share a key are not listed); each certificate names the CA
// certificates whose keys verify its signature in SignedBy, and is warned
// about when a CA of its issuer's name is present but did not sign it.
// Call it once, after every Describe.
func Link(objs []Object) {
	counts := fileCounts(objs)
	byKey := map[string][]int{}
	bySubject := map[string][]int{}
	for i := range objs {
		o := &objs[i]
		if o.spki != "" {
			byKey[o.spki] = append(byKey[o.spki], i)
		}
		if o.cert != nil {
			bySubject[string(o.cert.RawSubject)] = append(bySubject[string(o.cert.RawSubject)], i)
		}
	}
	for i := range objs {
		o := &objs[i]
		if o.spki != "" {
			more := 0
			for _, j := range byKey[o.spki] {
				if j == i || o.Kind == KindCertificate && objs[j].Kind == KindCertificate {
					continue
				}
				if len(o.Matches) == maxMatches {
					more++
					continue
				}
				o.Matches = append(o.Matches, reference(&objs[j], counts))
			}
			if more > 0 {
				o.Matches = append(o.Matches, fmt.Sprintf("and %d more", more))
			}
		}
		if o.cert != nil && !o.Certificate.SelfSigned {
			linkIssuer(objs, i, bySubject[string(o.cert.RawIssuer)], counts)
		}
	}
}

// linkIssuer fills in SignedBy for certificate i from the candidates whose
// subject is its issuer.
func linkIssuer(objs []Object, i int, candidates []int, counts map[string]int) {
	o := &objs[i]
	var wrongKey []string
	tried := 0
	for _, j := range candidates {
		p := objs[j].cert
		if j == i || p.BasicConstraintsValid && !p.IsCA {
			continue
		}
		if tried == maxIssuerChecks {
			break
		}
		tried++
		ref := reference(&objs[j], counts)
		if err := o.cert.CheckSignatureFrom(p); err != nil {
			wrongKey = append(wrongKey, ref)
			continue
		}
		o.Certificate.SignedBy = append(o.Certificate.SignedBy, ref)
		if o.cert.NotAfter.After(p.NotAfter) {
			o.Warnings = append(o.Warnings, fmt.Sprintf("outlives its issuer %s: from %s on, it no longer verifies", ref, p.NotAfter.UTC().Format("2006-01-02T15:04:05Z")))
		}
	}
	if len(o.Certificate.SignedBy) == 0 && len(wrongKey) > 0 {
		o.Warnings = append(o.Warnings, fmt.Sprintf("issuer name matches %s, but that CA's key did not sign it (a different CA of the same name?)", wrongKey[0]))
	}
}

// reference names an object for another object's Matches or SignedBy:
// "certificate CN=admin in admin.crt".
func reference(o *Object, counts map[string]int) string {
	var what string
	switch o.Kind {
	case KindCertificate:
		what = "certificate " + subjectRef(o.Certificate.Subject, o.cn)
	case KindCertificateRequest:
		what = "certificate request " + subjectRef(o.CertificateRequest.Subject, o.cn)
	case KindPrivateKey:
		what = "private key"
	case KindPublicKey:
		what = "public key"
	default:
		what = string(o.Kind)
	}
	return what + " in " + source(o, counts)
}

// subjectRef is "CN=name" when there is a common name, else the whole DN.
func subjectRef(dn, cn string) string {
	if cn != "" {
		return "CN=" + escapeDNValue(cn)
	}
	if dn == "" {
		return "(empty subject)"
	}
	return "[" + dn + "]"
}

// source says where an object is: the file, with the location when the file
// holds several objects or the object is not simply the file's only block.
func source(o *Object, counts map[string]int) string {
	if counts[o.File] == 1 && (o.Location == "PEM block 1" || o.Location == "DER") {
		return o.File
	}
	return o.File + " (" + o.Location + ")"
}

// fileCounts counts the objects of each file.
func fileCounts(objs []Object) map[string]int {
	counts := map[string]int{}
	for _, o := range objs {
		counts[o.File]++
	}
	return counts
}
