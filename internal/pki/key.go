// Package pki holds the X.509 primitives kubepki is built on: key generation,
// PEM encoding, certificate issuance with Kubernetes' usage rules, and
// checks of a certificate against what was asked of it. It knows nothing of
// files or of Kubernetes objects.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
)

// KeyAlgorithm names a private key type and size.
type KeyAlgorithm string

// The key algorithms kubepki can generate.
const (
	RSA2048   KeyAlgorithm = "RSA-2048"
	RSA3072   KeyAlgorithm = "RSA-3072"
	RSA4096   KeyAlgorithm = "RSA-4096"
	ECDSAP256 KeyAlgorithm = "ECDSA-P256"
	ECDSAP384 KeyAlgorithm = "ECDSA-P384"
	Ed25519   KeyAlgorithm = "Ed25519"
)

// DefaultKeyAlgorithm is used when a spec names none: fast to generate and
// accepted by every Kubernetes component and by etcd.
const DefaultKeyAlgorithm = ECDSAP256

// KeyAlgorithms lists every supported algorithm, in the order --help shows them.
func KeyAlgorithms() []KeyAlgorithm {
	return []KeyAlgorithm{RSA2048, RSA3072, RSA4096, ECDSAP256, ECDSAP384, Ed25519}
}

// ParseKeyAlgorithm accepts any supported name, case-insensitively.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	for _, a := range KeyAlgorithms() {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	names := make([]string, 0, len(KeyAlgorithms()))
	for _, a := range KeyAlgorithms() {
		names = append(names, string(a))
	}
	return "", fmt.Errorf("unknown key algorithm %q (want one of %s)", s, strings.Join(names, ", "))
}

// CanSignTokens reports whether kube-apiserver accepts this algorithm for
// service-account token signing keys: it takes RSA and ECDSA, not Ed25519.
func (a KeyAlgorithm) CanSignTokens() bool { return a != Ed25519 }

// Slow reports whether generating one key takes long enough (RSA-3072 and up,
// hundreds of milliseconds) that a batch deserves a progress report.
func (a KeyAlgorithm) Slow() bool { return a == RSA3072 || a == RSA4096 }

// GenerateKey returns a new private key of the algorithm.
func GenerateKey(a KeyAlgorithm) (crypto.Signer, error) {
	switch a {
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ECDSAP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case Ed25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	}
	return nil, fmt.Errorf("unknown key algorithm %q", a)
}

// AlgorithmOf names the algorithm of a public key, e.g. "ECDSA-P256", or
// describes it when it is not one kubepki generates.
func AlgorithmOf(pub crypto.PublicKey) KeyAlgorithm {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return KeyAlgorithm(fmt.Sprintf("RSA-%d", k.N.BitLen()))
	case *ecdsa.PublicKey:
		return KeyAlgorithm("ECDSA-" + strings.ReplaceAll(k.Curve.Params().Name, "-", ""))
	case ed25519.PublicKey:
		return Ed25519
	}
	return KeyAlgorithm(fmt.Sprintf("%T", pub))
}

// isRSA reports whether pub is an RSA key, the only kind for which
// keyEncipherment is a meaningful usage (RSA key transport in TLS ≤ 1.2).
func isRSA(pub crypto.PublicKey) bool {
	_, ok := pub.(*rsa.PublicKey)
	return ok
}

// KeyMatches reports whether priv is the private half of pub.
func KeyMatches(pub crypto.PublicKey, priv crypto.Signer) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := priv.Public().(equaler)
	return ok && e.Equal(pub)
}
