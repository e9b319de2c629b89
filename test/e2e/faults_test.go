package e2e

import (
	"bufio"
	"context"
	"crypto"
	crand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/testenv"
)

// TestControllerUnderFaults runs two replicas of the real controller with
// leader election, the approver and the kube-apiserver-client signer, while
// a stream of requests arrives — honest ones (auto-approved by policy, or
// approved by an admin) and forged ones — and, mid-stream:
//
//  1. the signer's CA, mounted as a Secret volume, is replaced with garbage,
//     then with a mismatched pair, then restored: the controller goes on
//     signing with the last good CA, says so once per change and on /readyz
//     and kubepki_ca_stale, and never signs with a broken pair;
//  2. the leader is SIGKILLed: the standby takes over once the lease
//     expires;
//  3. kube-apiserver is stopped and started again on the same port over the
//     same etcd.
//
// Replicas that exit are started again after a second, as kubelet restarts
// a container: a leader that cannot renew its lease while the API server is
// down exits on purpose ("leader election lost"), which is the only exit
// allowed besides the SIGKILL.
//
// At the end every honest request has exactly one certificate, issued once
// (one Approved condition, status.certificate never replaced, at most one
// "issued" record across every replica's log, with that serial), for its
// own key, chaining to the CA; every forged one is Denied or Failed with no
// certificate. The fault plan's seed and timings are logged;
// KUBEPKI_FAULT_SEED=N replays a plan.
func TestControllerUnderFaults(t *testing.T) {
	const (
		honestAuto  = 240 // jane's own, approved by the policy
		honestAdmin = 120 // approved by an admin, signed as they are
		forgedEach  = 25  // per forged kind
		workers     = 4   // --workers: bounds what a killed replica leaves unlogged
		lease       = 4 * time.Second
	)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("KUBEPKI_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("KUBEPKI_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, 0x6b756265706b69))
	t.Logf("fault plan seed %d (KUBEPKI_FAULT_SEED=%d replays it)", seed, seed)

	e := newCertAPI(t, withoutAdmissionGuards)
	sa := e.controllerIdentity()
	jane, policy := e.developers()

	// The signer's CA as a Secret volume: the cluster CA, whose
	// certificates the API server accepts. A second CA provides a
	// certificate that does not match the key.
	caCertPEM, caKeyPEM := readBytes(t, e.caCert), readBytes(t, e.caKey)
	_, otherCert, _ := e.newCA("other-ca")
	vol := testenv.NewSecretVolume(t, map[string][]byte{"tls.crt": caCertPEM, "tls.key": caKeyPEM})
	args := []string{
		"controller", "--kubeconfig=" + sa, "--log-level=info",
		"--signer=" + certv1.KubeAPIServerClientSignerName + "=" + vol.Path("tls.crt") + "," + vol.Path("tls.key"),
		"--approve", "--approve-policy=" + policy, "--max-duration=24h",
		"--workers=" + strconv.Itoa(workers),
		"--lease-duration=" + lease.String(), "--renew-deadline=3s", "--retry-period=500ms",
	}
	replicas := []*replica{newReplica(e, "replica-a", args), newReplica(e, "replica-b", args)}
	for _, r := range replicas {
		r.start()
	}
	defer func() {
		for _, r := range replicas {
			r.stop()
		}
	}()

	// Every request, shuffled by the seed.
	plan := faultRequests(honestAuto, honestAdmin, forgedEach)
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	want := map[string]*faultRequest{}
	for _, r := range plan {
		want[r.name] = r
	}

	obs := watchCSRs(t, e.adminCS)

	// The stream: about 15 requests a second for half a minute, from six
	// clients that retry through the API server's absence.
	start := time.Now()
	since := func() string { return time.Since(start).Round(10 * time.Millisecond).String() }
	submitErr := make(chan error, 1)
	go func() {
		submitErr <- submitAll(e.adminCS, jane, plan, 6, 65*time.Millisecond)
	}()

	// The fault plan, jittered by the seed.
	garbageAt := 5*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
	killAt := garbageAt + 9*time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	restartAt := killAt + 7*time.Second + time.Duration(rng.Int64N(int64(3*time.Second)))
	outage := time.Second + time.Duration(rng.Int64N(int64(2*time.Second)))
	t.Logf("fault plan: CA garbage at %v, mismatched pair at +3s, restored at +6s; SIGKILL the leader at %v; kube-apiserver down at %v for %v",
		garbageAt, killAt, restartAt, outage)

	var (
		issuedAtGarbage int
		staleSeen       = map[string]bool{} // replica run → kubepki_ca_stale was 1
		killedRun       *replicaRun
		takeoverAt      time.Duration
		steps           []faultStep
	)
	steps = []faultStep{
		{"CA certificate replaced with garbage", garbageAt, func() bool {
			issuedAtGarbage = obs.issuedCount()
			vol.Update(map[string][]byte{"tls.crt": []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), "tls.key": caKeyPEM})
			return true
		}},
		{"CA replaced with a mismatched pair", garbageAt + 3*time.Second, func() bool {
			vol.Update(map[string][]byte{"tls.crt": readBytes(t, otherCert), "tls.key": caKeyPEM})
			return true
		}},
		{"CA restored", garbageAt + 6*time.Second, func() bool {
			// Before restoring: every live replica is ready and says
			// its CA is stale, and signing went on.
			for _, r := range replicas {
				run := r.current()
				if run == nil || run.exited() {
					continue
				}
				code, body, err := run.get("/readyz")
				if err != nil || code != http.StatusOK || !strings.Contains(body, "CA files do not load") {
					t.Errorf("%s /readyz with a broken CA file: %d %q (%v), want 200 with a warning", run.name, code, body, err)
				}
				if v, err := run.metric("kubepki_ca_stale"); err == nil && v == 1 {
					staleSeen[run.name] = true
				}
			}
			if n := obs.issuedCount(); n <= issuedAtGarbage {
				t.Errorf("nothing issued while the CA files were broken (%d before, %d after)", issuedAtGarbage, n)
			} else {
				t.Logf("%s: %d certificates issued with the last good CA while the files were broken", since(), n-issuedAtGarbage)
			}
			vol.Update(map[string][]byte{"tls.crt": caCertPEM, "tls.key": caKeyPEM})
			return true
		}},
		{"SIGKILL the leader", killAt, func() bool {
			for _, r := range replicas {
				if run := r.current(); run != nil && !run.exited() && run.leading() {
					run.proc.Kill()
					run.killed = true
					killedRun = run
					t.Logf("%s: SIGKILLed %s, the leader", since(), run.name)
					return true
				}
			}
			return false // no leader at this instant: try again
		}},
		{"kube-apiserver restarted", restartAt, func() bool {
			e.apiserver = testenv.RestartAPIServer(t, e.apiserver, e.readyTLS, func() {
				t.Logf("%s: kube-apiserver stopped", since())
				time.Sleep(outage)
			})
			t.Logf("%s: kube-apiserver ready again", since())
			return true
		}},
	}

	// One loop does everything that may fail the test: the fault plan,
	// the watch for a new leader after the kill, and restarting replicas
	// that exited.
	deadline := time.Now().Add(170 * time.Second)
	var submitted bool
	for {
		if len(steps) > 0 && time.Since(start) >= steps[0].at {
			if steps[0].do() {
				t.Logf("%s: %s", since(), steps[0].name)
				steps = steps[1:]
			}
		}
		if killedRun != nil && takeoverAt == 0 {
			for _, r := range replicas {
				if run := r.current(); run != nil && run != killedRun && !run.exited() && run.leading() {
					takeoverAt = time.Since(start)
					t.Logf("%s: %s leads, %v after the kill (lease %v)", since(), run.name, takeoverAt-killAt, lease)
				}
			}
		}
		for _, r := range replicas {
			r.supervise(since)
		}
		if !submitted {
			select {
			case err := <-submitErr:
				if err != nil {
					t.Fatal(err)
				}
				submitted = true
				t.Logf("%s: all %d requests submitted", since(), len(plan))
			default:
			}
		}
		if submitted && len(steps) == 0 && obs.finished(want) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d requests finished, faults left %d", since(), obs.finished(want), len(want), len(steps))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s: every request finished (%d)", since(), len(want))
	if takeoverAt == 0 {
		t.Error("no replica took over after the leader was killed")
	}

	list, err := e.adminCS.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := readReplicaLogs(t, replicas)
	for _, line := range logs.summary {
		t.Log(line)
	}
	serials := map[string]string{}
	unlogged, seen := 0, 0
	pool := x509.NewCertPool()
	pool.AddCert(e.ca.Cert)
	for i := range list.Items {
		c := &list.Items[i]
		r, ok := want[c.Name]
		if !ok {
			continue
		}
		seen++
		if n := obs.certificates(c.Name); n > 1 {
			t.Errorf("%s: status.certificate held %d different certificates over time", c.Name, n)
		}
		issuedLogs := logs.issued[c.Name]
		if !r.honest() {
			if len(c.Status.Certificate) > 0 || len(issuedLogs) > 0 {
				t.Errorf("%s (%s): forged request got a certificate", c.Name, r.kind)
			}
			cond := csr.Condition(c, r.refusal())
			switch {
			case cond == nil || countConditions(c, r.refusal()) != 1:
				t.Errorf("%s (%s): conditions %+v, want one %s", c.Name, r.kind, c.Status.Conditions, r.refusal())
			case r.refusal() == certv1.CertificateDenied && csr.Approved(c):
				t.Errorf("%s (%s): approved as well as denied: %+v", c.Name, r.kind, c.Status.Conditions)
			case !strings.Contains(cond.Message, r.reason()):
				t.Errorf("%s (%s): %s %q, want it to say %q", c.Name, r.kind, cond.Type, cond.Message, r.reason())
			}
			continue
		}
		if n := countConditions(c, certv1.CertificateApproved); n != 1 || csr.Denied(c) || csr.Failed(c) {
			t.Errorf("%s: %d Approved conditions, state %s", c.Name, n, csr.State(c))
		}
		certs, err := pki.ParseCerts(c.Status.Certificate)
		if err != nil || len(certs) != 1 {
			t.Errorf("%s: status.certificate holds %d certificates (%v)", c.Name, len(certs), err)
			continue
		}
		cert := certs[0]
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: certificate does not chain to the CA: %v", c.Name, err)
		}
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(r.key.Public()) {
			t.Errorf("%s: certificate is not for the request's key", c.Name)
		}
		if cert.Subject.CommonName != r.cn || cert.IsCA {
			t.Errorf("%s: certificate CN %q CA %v, want %q CA:FALSE", c.Name, cert.Subject.CommonName, cert.IsCA, r.cn)
		}
		serial := fmt.Sprintf("%X", cert.SerialNumber)
		if other, dup := serials[serial]; dup {
			t.Errorf("serial %s in both %s and %s", serial, other, c.Name)
		}
		serials[serial] = c.Name
		switch len(issuedLogs) {
		case 0:
			unlogged++ // written by a replica that died before it could log it
		case 1:
			if issuedLogs[0] != serial {
				t.Errorf("%s: a replica logged issuing serial %s, the request holds %s", c.Name, issuedLogs[0], serial)
			}
		default:
			t.Errorf("%s: issued %d times (serials %v), want once", c.Name, len(issuedLogs), issuedLogs)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of %d requests exist", seen, len(want))
	}
	// A replica that dies (SIGKILL, or exiting when its lease is lost) may
	// have had each of its workers between a write the API server applied
	// and the log record that follows it.
	if limit := workers * logs.ended; unlogged > limit {
		t.Errorf("%d certificates issued by no replica's account, more than %d workers × %d replicas that died", unlogged, workers, logs.ended)
	}
	t.Logf("%d honest certificates, %d logged as issued, %d written by a replica that died before logging them; %d replica runs",
		honestAuto+honestAdmin, honestAuto+honestAdmin-unlogged, unlogged, logs.runs)

	// The broken CA files: reported once per change and replica run, and
	// seen as stale by at least the leader of the time.
	if len(staleSeen) == 0 {
		t.Error("no replica reported kubepki_ca_stale 1 while the CA files were broken")
	}
	for name, n := range logs.caWarnings {
		if n > 2 {
			t.Errorf("%s: %d 'do not load' warnings for 2 broken changes", name, n)
		}
	}
	for _, r := range replicas {
		if run := r.current(); run != nil && !run.exited() {
			if v, err := run.metric("kubepki_ca_stale"); err != nil || v != 0 {
				t.Errorf("%s: kubepki_ca_stale = %v (%v) after the CA was restored", run.name, v, err)
			}
		}
	}
	// Replicas exit only when killed or when they lose the lease.
	for _, run := range logs.unexpectedExits {
		t.Errorf("%s exited on its own, not for a lost lease", run)
	}
	for _, r := range replicas {
		for _, run := range r.runs {
			log := readString(t, run.proc.LogPath())
			// Not "forbidden": a kube-apiserver that has just started
			// answers before its RBAC caches have synced.
			for _, bad := range []string{"panic", "PRIVATE KEY", "BEGIN CERTIFICATE"} {
				if strings.Contains(log, bad) {
					t.Errorf("%s: log contains %q", run.name, bad)
				}
			}
		}
	}
}

// faultStep is one fault to inject at an offset from the start; do returns
// false to be tried again on the next tick.
type faultStep struct {
	name string
	at   time.Duration
	do   func() bool
}

// faultRequest is one request of the stream.
type faultRequest struct {
	name, kind string
	cn         string
	o          []string
	dns        []string
	isCA       bool
	usages     []certv1.KeyUsage
	byAdmin    bool // created and approved by the admin; else by jane
	key        crypto.Signer
}

// The kinds of requests. Honest: "auto" (jane's own identity, approved by
// the policy), "admin" (approved by an admin). Forged, refused by the
// approver: "masters", "impersonate", "ca". Forged and approved by an admin
// by mistake, refused by the signer's rules: "san", "server-auth".
func faultRequests(auto, admin, forged int) []*faultRequest {
	var out []*faultRequest
	add := func(n int, kind string, r faultRequest) {
		for i := range n {
			c := r
			c.name, c.kind = fmt.Sprintf("fault-%s-%03d", kind, i), kind
			out = append(out, &c)
		}
	}
	add(auto, "auto", faultRequest{cn: "jane", o: []string{"developers"}})
	add(admin, "admin", faultRequest{cn: "user", o: []string{"staff"}, byAdmin: true})
	add(forged, "masters", faultRequest{cn: "jane", o: []string{"developers", "system:masters"}})
	add(forged, "impersonate", faultRequest{cn: "admin", o: []string{"developers"}})
	add(forged, "ca", faultRequest{cn: "jane", o: []string{"developers"}, isCA: true})
	add(forged, "san", faultRequest{cn: "web", dns: []string{"web.example.com"}, byAdmin: true})
	add(forged, "server-auth", faultRequest{cn: "web", usages: []certv1.KeyUsage{"digital signature", "server auth"}, byAdmin: true})
	for i := range out {
		if out[i].kind == "admin" {
			out[i].cn = out[i].name
		}
	}
	return out
}

func (r *faultRequest) honest() bool { return r.kind == "auto" || r.kind == "admin" }

// refusal is the condition a forged request must end with.
func (r *faultRequest) refusal() certv1.RequestConditionType {
	if r.byAdmin {
		return certv1.CertificateFailed
	}
	return certv1.CertificateDenied
}

// reason is what the refusal's message must say.
func (r *faultRequest) reason() string {
	switch r.kind {
	case "masters":
		return "group system:masters is never auto-approved"
	case "impersonate":
		return `CN "admin" with groups [developers] is not allowed for requester "jane"`
	case "ca":
		return "CA:TRUE"
	case "san":
		return "takes no subjectAltNames"
	case "server-auth":
		return `usage "server auth" is not allowed in a client certificate`
	}
	return ""
}

// object makes the CSR object, with a fresh key.
func (r *faultRequest) object() (*certv1.CertificateSigningRequest, error) {
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	r.key = key
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: r.cn, Organization: r.o}, DNSNames: r.dns}
	if r.isCA {
		v, _ := asn1.Marshal(struct {
			IsCA bool `asn1:"optional"`
		}{true})
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{2, 5, 29, 19}, Critical: true, Value: v}}
	}
	der, err := x509.CreateCertificateRequest(crand.Reader, tmpl, key)
	if err != nil {
		return nil, err
	}
	usages := r.usages
	if usages == nil {
		usages = []certv1.KeyUsage{"digital signature", "client auth"}
	}
	return csr.NewObject(csr.Request{Name: r.name, SignerName: certv1.KubeAPIServerClientSignerName, PEM: pki.EncodeCSR(der), Usages: usages}), nil
}

// submitAll creates every request from `clients` goroutines, one every
// `every`, and has the admin approve the byAdmin ones. Each call is retried
// until the API server answers; an AlreadyExists after a lost answer counts
// as done.
func submitAll(admin, jane kubernetes.Interface, reqs []*faultRequest, clients int, every time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	retry := func(what string, f func() error) error {
		var err error
		for ctx.Err() == nil {
			if err = f(); err == nil {
				return nil
			}
			time.Sleep(200 * time.Millisecond)
		}
		return fmt.Errorf("%s: %w (last: %v)", what, ctx.Err(), err)
	}
	work := make(chan *faultRequest)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for r := range work {
				obj, err := r.object()
				if err != nil {
					errs <- err
					return
				}
				cs := jane
				if r.byAdmin {
					cs = admin
				}
				api := cs.CertificatesV1().CertificateSigningRequests()
				err = retry("create "+r.name, func() error {
					_, err := api.Create(ctx, obj, metav1.CreateOptions{})
					if apierrors.IsAlreadyExists(err) {
						return nil
					}
					return err
				})
				if err == nil && r.byAdmin {
					err = retry("approve "+r.name, func() error {
						c, err := api.Get(ctx, r.name, metav1.GetOptions{})
						if err != nil || csr.Approved(c) {
							return err
						}
						c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
							Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "AdminApproved", LastUpdateTime: metav1.Now()})
						_, err = api.UpdateApproval(ctx, r.name, c, metav1.UpdateOptions{})
						return err
					})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for _, r := range reqs {
		<-tick.C
		select {
		case work <- r:
		case err := <-errs:
			close(work)
			wg.Wait()
			return err
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// csrObserver watches every CSR through an informer (which lists and
// watches again after the API server comes back) and remembers each
// distinct certificate a request ever held.
type csrObserver struct {
	mu    sync.Mutex
	certs map[string][]string // name → distinct status.certificate values, in order
	state map[string]*certv1.CertificateSigningRequest
}

func watchCSRs(t *testing.T, cs kubernetes.Interface) *csrObserver {
	t.Helper()
	o := &csrObserver{certs: map[string][]string{}, state: map[string]*certv1.CertificateSigningRequest{}}
	factory := informers.NewSharedInformerFactory(cs, 0)
	inf := factory.Certificates().V1().CertificateSigningRequests().Informer()
	record := func(obj any) {
		c, ok := obj.(*certv1.CertificateSigningRequest)
		if !ok {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		o.state[c.Name] = c
		if len(c.Status.Certificate) > 0 {
			pem := string(c.Status.Certificate)
			if !slices.Contains(o.certs[c.Name], pem) {
				o.certs[c.Name] = append(o.certs[c.Name], pem)
			}
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    record,
		UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, inf.HasSynced) {
		t.Fatal("CSR informer did not sync")
	}
	return o
}

// issuedCount is how many requests hold a certificate.
func (o *csrObserver) issuedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.certs)
}

// certificates is how many distinct certificates a request held.
func (o *csrObserver) certificates(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.certs[name])
}

// finished counts the wanted requests that reached their end: honest ones
// issued, forged ones Denied or Failed.
func (o *csrObserver) finished(want map[string]*faultRequest) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for name, r := range want {
		c, ok := o.state[name]
		if !ok {
			continue
		}
		if r.honest() && csr.Issued(c) || !r.honest() && (csr.Denied(c) || csr.Failed(c)) {
			n++
		}
	}
	return n
}

func countConditions(c *certv1.CertificateSigningRequest, typ certv1.RequestConditionType) int {
	n := 0
	for _, cond := range c.Status.Conditions {
		if cond.Type == typ {
			n++
		}
	}
	return n
}

// replica is one controller replica: a slot whose process is started again
// when it exits, like a container under kubelet.
type replica struct {
	e    *certAPI
	name string
	args []string
	runs []*replicaRun
	down time.Time // when the current run was seen to have exited
	done bool
}

// replicaRun is one process of a replica.
type replicaRun struct {
	name   string
	proc   *testenv.Process
	port   int
	killed bool // SIGKILLed by the test
}

func newReplica(e *certAPI, name string, args []string) *replica {
	return &replica{e: e, name: name, args: args}
}

// start runs a new process for the replica.
func (r *replica) start() {
	port := testenv.FreePort(r.e.t)
	name := fmt.Sprintf("%s-run%d", r.name, len(r.runs)+1)
	args := append(slices.Clone(r.args), "--http-address=127.0.0.1:"+strconv.Itoa(port))
	r.runs = append(r.runs, &replicaRun{name: name, proc: testenv.Start(r.e.t, name, r.e.kubepki, args...), port: port})
	r.down = time.Time{}
}

// supervise starts the replica again a second after its process exited.
func (r *replica) supervise(since func() string) {
	run := r.current()
	if r.done || run == nil || !run.exited() {
		return
	}
	if r.down.IsZero() {
		r.down = time.Now()
		r.e.t.Logf("%s: %s exited (%v)", since(), run.name, run.proc.Err())
		return
	}
	if time.Since(r.down) >= time.Second {
		r.start()
		r.e.t.Logf("%s: %s started again as %s", since(), r.name, r.current().name)
	}
}

// stop ends supervision and the current process.
func (r *replica) stop() {
	r.done = true
	if run := r.current(); run != nil {
		run.proc.Stop()
	}
}

func (r *replica) current() *replicaRun {
	if len(r.runs) == 0 {
		return nil
	}
	return r.runs[len(r.runs)-1]
}

func (run *replicaRun) exited() bool {
	select {
	case <-run.proc.Done():
		return true
	default:
		return false
	}
}

// leading reports kubepki_leader 1.
func (run *replicaRun) leading() bool {
	v, err := run.metric("kubepki_leader")
	return err == nil && v == 1
}

// get fetches a path from the replica's HTTP endpoint.
func (run *replicaRun) get(path string) (int, string, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(run.port)) + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// metric sums a metric's samples on the replica's /metrics.
func (run *replicaRun) metric(name string) (float64, error) {
	code, body, err := run.get("/metrics")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
	sum, found := 0.0, false
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		series, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(series, "#") || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, err
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no %s on /metrics", name)
	}
	return sum, nil
}

// replicaLogs is what every run of every replica logged.
type replicaLogs struct {
	issued          map[string][]string // CSR → serials logged as issued
	caWarnings      map[string]int      // run → "do not load" warnings
	unexpectedExits []string
	runs, ended     int      // runs; runs that ended before the test did
	summary         []string // one line per run
}

func readReplicaLogs(t *testing.T, replicas []*replica) replicaLogs {
	t.Helper()
	out := replicaLogs{issued: map[string][]string{}, caWarnings: map[string]int{}}
	for _, r := range replicas {
		for _, run := range r.runs {
			out.runs++
			data := readString(t, run.proc.LogPath())
			issued := 0
			for _, line := range strings.Split(data, "\n") {
				var rec struct {
					Msg    string `json:"msg"`
					CSR    string `json:"csr"`
					Serial string `json:"serial"`
				}
				if json.Unmarshal([]byte(line), &rec) != nil {
					continue
				}
				switch {
				case rec.Msg == "issued":
					out.issued[rec.CSR] = append(out.issued[rec.CSR], rec.Serial)
					issued++
				case strings.Contains(rec.Msg, "do not load"):
					out.caWarnings[run.name]++
				}
			}
			end := "running"
			if run.exited() {
				out.ended++
				end = fmt.Sprintf("exited: %v", run.proc.Err())
				switch {
				case run.killed:
					end += ", SIGKILLed by the test"
				case strings.Contains(data, "leader election lost"):
					end += ", leader election lost"
				default:
					out.unexpectedExits = append(out.unexpectedExits, fmt.Sprintf("%s (%v)", run.name, run.proc.Err()))
				}
			}
			out.summary = append(out.summary, fmt.Sprintf("%s: %d issued, %d CA warnings, %s", run.name, issued, out.caWarnings[run.name], end))
		}
	}
	return out
}

func readBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readString(t *testing.T, path string) string { return string(readBytes(t, path)) }
