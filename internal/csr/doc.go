// Package csr is kubepki's side of the Kubernetes Certificates API
// (certificates.k8s.io/v1): building CertificateSigningRequest objects,
// reading their conditions, the rules Kubernetes sets for each signer, the
// expiration arithmetic kube-controller-manager applies, signing an approved
// request, and the approver's triage of named policies.
//
// It talks to no API server and reads no files: the controller
// (internal/controller) and the CLI (internal/cli) do that, and hand this
// package objects. Everything here is a pure function of its arguments (and
// of the Node facts a caller supplies), so every rule is table-tested alone.
package csr
