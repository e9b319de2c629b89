package controller

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

// Condition reasons the controller writes.
const (
	ReasonAutoApproved = "AutoApproved"
	ReasonAutoDenied   = "AutoDenied"
	// ReasonSignerValidation is kube-controller-manager's reason for a
	// request its signer's rules refuse.
	ReasonSignerValidation = "SignerValidationFailure"
	// ReasonInvalidRequest: spec.request does not parse.
	ReasonInvalidRequest = "InvalidRequest"
)

// maxWriteAttempts bounds the re-read-and-retry loop after conflicts.
const maxWriteAttempts = 5

// writeTimeout bounds one approval or status write. Writes are detached
// from the reconcile's cancellation: a replica told to stop finishes the
// write it started instead of abandoning it half-way, where the API server
// may have applied it without the replica knowing (and counting) it.
const writeTimeout = 30 * time.Second

// writeContext is ctx without its cancellation, with writeTimeout.
func writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
}

// EventRecorder records Kubernetes events (controller-runtime's
// events.k8s.io recorder satisfies it).
type EventRecorder interface {
	Eventf(regarding runtime.Object, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

// Signer is one signer name the controller issues for, with its CA.
type Signer struct {
	Name string
	CA   *CAFiles
}

// Reconciler approves (when it has an approver) and signs
// CertificateSigningRequests.
type Reconciler struct {
	// Client reads from the informer cache and writes to the API server.
	Client client.Client
	// Live reads from the API server, bypassing the cache: only after a
	// conflict, to see what won.
	Live client.Reader
	// Signers by signer name.
	Signers map[string]*Signer
	// Approver, if not nil, approves or denies pending requests.
	Approver *csr.Approver
	// DryRun logs the approver's decisions instead of writing them.
	DryRun bool
	// MaxDuration caps every certificate's lifetime.
	MaxDuration time.Duration
	Metrics     *Metrics
	Log         *slog.Logger
	Events      EventRecorder
	Now         func() time.Time
}

// Relevant reports whether an object is worth a reconcile: a request for a
// signer this controller signs or approves that is not finished (issued,
// failed or denied). The informer sees every CSR in the cluster; this
// filter keeps the others out of the work queue.
func (r *Reconciler) Relevant(obj client.Object) bool {
	c, ok := obj.(*certv1.CertificateSigningRequest)
	if !ok || csr.Issued(c) || csr.Failed(c) || csr.Denied(c) {
		return false
	}
	if _, ok := r.Signers[c.Spec.SignerName]; ok {
		return true
	}
	if r.Approver == nil || csr.Decided(c) {
		return false
	}
	for _, s := range r.Approver.SignerNames() {
		if s == c.Spec.SignerName {
			return true
		}
	}
	return false
}

// Reconcile is the triage of one CSR: drop what is not our business or is
// finished, approve or deny it if it is pending and we approve its signer,
// or sign it if it is approved and we sign for its signer.
//
// A request this controller approves is signed in the next reconcile, the
// one the approval's own update event brings, not in this one: by then the
// informer cache holds the approved object, so the certificate written next
// is not followed by a second pass over a stale cached copy that still
// lacks it (which would sign again, only to lose the conflict).
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var c certv1.CertificateSigningRequest
	if err := r.Client.Get(ctx, req.NamespacedName, &c); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !r.Relevant(&c) {
		return reconcile.Result{}, nil
	}
	if !csr.Decided(&c) {
		if r.Approver == nil {
			return reconcile.Result{}, nil // a person (or another approver) decides
		}
		return reconcile.Result{}, r.approve(ctx, &c)
	}
	if s, ok := r.Signers[c.Spec.SignerName]; ok && csr.NeedsSigning(&c) {
		return reconcile.Result{}, r.sign(ctx, &c, s)
	}
	return reconcile.Result{}, nil
}

// approve runs the approver and writes its verdict, if any.
func (r *Reconciler) approve(ctx context.Context, c *certv1.CertificateSigningRequest) error {
	d, err := r.Approver.Decide(ctx, c)
	if err != nil {
		return err
	}
	log := r.Log.With("csr", c.Name, "signer", c.Spec.SignerName, "requester", c.Spec.Username)
	if d.Verdict == csr.Ignore {
		log.Debug("left for a person", "chain", d.Chain, "reason", d.Reason)
		return nil
	}
	if r.DryRun {
		log.Info("dry run: would "+d.Verdict.String(), "chain", d.Chain, "policy", d.Policy, "reason", d.Reason)
		return nil
	}
	cond := certv1.CertificateSigningRequestCondition{
		Status:         corev1.ConditionTrue,
		Message:        d.Message(),
		LastUpdateTime: metav1.NewTime(r.Now()),
	}
	if d.Verdict == csr.Approve {
		cond.Type, cond.Reason = certv1.CertificateApproved, ReasonAutoApproved
	} else {
		cond.Type, cond.Reason = certv1.CertificateDenied, ReasonAutoDenied
	}
	upd := c.DeepCopy()
	upd.Status.Conditions = append(upd.Status.Conditions, cond)
	wctx, cancel := writeContext(ctx)
	defer cancel()
	if err := r.Client.SubResource("approval").Update(wctx, upd); err != nil {
		if apierrors.IsConflict(err) {
			// The object changed since the cache saw it; its newer
			// version is already on its way and decides again.
			r.Metrics.conflicts.WithLabelValues(c.Spec.SignerName).Inc()
			log.Debug("approval conflict; the newer version will be judged", "err", err)
			return nil
		}
		return fmt.Errorf("update approval of %s: %w", c.Name, err)
	}
	if d.Verdict == csr.Approve {
		r.Metrics.approved.WithLabelValues(c.Spec.SignerName, d.Chain).Inc()
		log.Info("approved", "chain", d.Chain, "reason", d.Reason)
	} else {
		r.Metrics.denied.WithLabelValues(c.Spec.SignerName, d.Policy).Inc()
		log.Info("denied", "chain", d.Chain, "policy", d.Policy, "reason", d.Reason)
		r.event(upd, corev1.EventTypeWarning, "Denied", "Approve", d.Message())
	}
	return nil
}

// sign issues the certificate and writes it with the resourceVersion it
// read. The API server accepts exactly one such write (and refuses any
// later change of status.certificate); on a conflict the object is re-read
// from the API server and the same certificate written again only if the
// request still needs one, so a CSR never gets two.
//
// A write that fails otherwise (a timeout, the API server restarting) may
// or may not have been applied. The outcome is read back, retrying until
// the API server answers, and the same certificate is written again if it
// did not land: the request is finished by this reconcile with the one
// certificate it signed, and counted and logged as issued exactly once.
//
// c is the reconcile's own copy (the cache client returns a deep copy), so
// it is written as it is, without another copy.
func (r *Reconciler) sign(ctx context.Context, c *certv1.CertificateSigningRequest, s *Signer) error {
	start := time.Now()
	// The context of every record, bound only where one is written: binding
	// it with Log.With on every request costs more than the record itself.
	who := func() *slog.Logger { return r.Log.With("csr", c.Name, "signer", s.Name, "requester", c.Spec.Username) }
	req, err := csr.ParseRequest(c.Spec.Request)
	if err != nil {
		return r.fail(ctx, c, s, ReasonInvalidRequest, err.Error())
	}
	if err := csr.ValidateForSigner(s.Name, req, c.Spec.Usages); err != nil {
		return r.fail(ctx, c, s, ReasonSignerValidation, err.Error())
	}
	ttl := csr.Lifetime(c.Spec.ExpirationSeconds, r.MaxDuration)
	cert, err := csr.Sign(s.CA.Current(), req, c.Spec.Usages, ttl, r.Now())
	if err != nil {
		// A broken or expired CA is the operator's to fix, not the
		// requester's fault: retry with backoff, do not fail the CSR.
		return fmt.Errorf("sign %s: %w", c.Name, err)
	}
	certPEM := pki.EncodeCert(cert)
	wctx, cancel := writeContext(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		// A refused update leaves c as it was but for the certificate;
		// an accepted one fills it with what the API server stored.
		c.Status.Certificate = certPEM
		err := r.Client.Status().Update(wctx, c)
		if err == nil {
			break
		}
		if apierrors.IsConflict(err) {
			r.Metrics.conflicts.WithLabelValues(s.Name).Inc()
		}
		if attempt == maxWriteAttempts {
			return fmt.Errorf("write certificate of %s: %d attempts: %w", c.Name, attempt, err)
		}
		// Conflict or not, read what the API server holds now: a
		// timeout may hide a write that was applied.
		fresh, gerr := r.readBack(wctx, c)
		if apierrors.IsNotFound(gerr) {
			return nil
		}
		if gerr != nil {
			return fmt.Errorf("write certificate of %s: %w (and read back: %w)", c.Name, err, gerr)
		}
		if fresh.UID == c.UID && bytes.Equal(fresh.Status.Certificate, certPEM) {
			break // ours landed after all
		}
		if !csr.NeedsSigning(fresh) || fresh.UID != c.UID {
			who().Info("another writer finished the request first; certificate discarded", "state", csr.State(fresh), "serial", serialHex(cert))
			return nil
		}
		if !apierrors.IsConflict(err) {
			who().Debug("certificate not written; writing it again", "attempt", attempt, "err", err)
		}
		c = fresh
	}
	elapsed := time.Since(start)
	r.Metrics.signed.WithLabelValues(s.Name).Inc()
	r.Metrics.signingSeconds.WithLabelValues(s.Name).Observe(elapsed.Seconds())
	if a := csr.Condition(c, certv1.CertificateApproved); a != nil && !a.LastUpdateTime.IsZero() {
		r.Metrics.issueDelay.WithLabelValues(s.Name).Observe(r.Now().Sub(a.LastUpdateTime.Time).Seconds())
	}
	r.Log.LogAttrs(ctx, slog.LevelInfo, "issued", slog.String("csr", c.Name), slog.String("signer", s.Name),
		slog.String("requester", c.Spec.Username), slog.String("subject", cert.Subject.String()), slog.String("serial", serialHex(cert)),
		slog.String("notAfter", cert.NotAfter.UTC().Format(time.RFC3339)), slog.String("took", elapsed.Round(time.Microsecond).String()))
	return nil
}

// fail marks the CSR Failed with a reason, with the same conflict rule as
// sign: re-read, and write only if it is still unfinished.
func (r *Reconciler) fail(ctx context.Context, c *certv1.CertificateSigningRequest, s *Signer, reason, message string) error {
	log := r.Log.With("csr", c.Name, "signer", s.Name, "requester", c.Spec.Username)
	for attempt := 1; ; attempt++ {
		upd := c.DeepCopy()
		upd.Status.Conditions = append(upd.Status.Conditions, certv1.CertificateSigningRequestCondition{
			Type:           certv1.CertificateFailed,
			Status:         corev1.ConditionTrue,
			Reason:         reason,
			Message:        message,
			LastUpdateTime: metav1.NewTime(r.Now()),
		})
		wctx, cancel := writeContext(ctx)
		err := r.Client.Status().Update(wctx, upd)
		cancel()
		if err == nil {
			break
		}
		if !apierrors.IsConflict(err) {
			return fmt.Errorf("mark %s failed: %w", c.Name, err)
		}
		r.Metrics.conflicts.WithLabelValues(s.Name).Inc()
		if attempt == maxWriteAttempts {
			return fmt.Errorf("mark %s failed: %d conflicts in a row: %w", c.Name, attempt, err)
		}
		fresh := &certv1.CertificateSigningRequest{}
		if err := r.Live.Get(ctx, client.ObjectKeyFromObject(c), fresh); err != nil {
			return client.IgnoreNotFound(err)
		}
		if !csr.NeedsSigning(fresh) || fresh.UID != c.UID {
			return nil
		}
		c = fresh
	}
	r.Metrics.failed.WithLabelValues(s.Name, reason).Inc()
	log.Info("failed", "reason", reason, "message", message)
	r.event(c, corev1.EventTypeWarning, "SigningFailed", "Sign", reason+": "+message)
	return nil
}

// readBackWait is the first pause between reads in readBack; it doubles
// up to readBackMaxWait.
const (
	readBackWait    = 100 * time.Millisecond
	readBackMaxWait = 2 * time.Second
)

// readBack reads a CSR from the API server, retrying while the API server
// does not answer (it may be restarting) until ctx is done. Not found is
// returned at once.
func (r *Reconciler) readBack(ctx context.Context, c *certv1.CertificateSigningRequest) (*certv1.CertificateSigningRequest, error) {
	wait := readBackWait
	for {
		fresh := &certv1.CertificateSigningRequest{}
		err := r.Live.Get(ctx, client.ObjectKeyFromObject(c), fresh)
		if err == nil {
			return fresh, nil
		}
		if apierrors.IsNotFound(err) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
		wait = min(2*wait, readBackMaxWait)
	}
}

func (r *Reconciler) event(obj runtime.Object, eventType, reason, action, note string) {
	if r.Events != nil {
		r.Events.Eventf(obj, nil, eventType, reason, action, "%s", note)
	}
}

// serialHex is the serial number in hex, as openssl x509 -serial prints it.
func serialHex(c *x509.Certificate) string { return strings.ToUpper(c.SerialNumber.Text(16)) }
