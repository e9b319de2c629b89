package e2e

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/pki"
)

// benchWriterWorkers is how many status writes the bare writer keeps in
// flight.
const benchWriterWorkers = 32

// benchWriterClient is the fastest client an API server allows: protobuf
// both ways and no client-side rate limit.
func benchWriterClient(kubeconfigPath string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath)
	if err != nil {
		return nil, err
	}
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	cfg.QPS = -1 // no rate limiter at all
	cfg.UserAgent = "kubepki-bench-writer"
	return kubernetes.NewForConfig(cfg)
}

// benchBareWriter is the API server's own write ceiling for issuing: it
// lists the CSRs once and gives every approved one without a certificate
// certPEM (ready-made: no parsing, no signing) with one UpdateStatus carrying
// the resourceVersion it listed, benchWriterWorkers at a time. With watch it
// also holds a watch on CSRs from the list's resourceVersion and decodes
// every event until it has seen its own writes come back, which is the floor
// any controller pays: a controller cannot know what to do without one.
// With a CA it does what any signer must besides: parse each request and
// check its signature, and sign a certificate for it (csr.ParseRequest,
// csr.Sign: the same code as kubepki's controller), instead of writing
// certPEM.
func benchBareWriter(ctx context.Context, cs kubernetes.Interface, certPEM []byte, watch bool, ca *pki.CA) error {
	api := cs.CertificatesV1().CertificateSigningRequests()
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list CSRs: %w", err)
	}
	var todo []*certv1.CertificateSigningRequest
	for i := range list.Items {
		c := &list.Items[i]
		if csr.Approved(c) && !csr.Issued(c) {
			todo = append(todo, c)
		}
	}
	var watched chan error
	if watch {
		w, err := api.Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
		if err != nil {
			return fmt.Errorf("watch CSRs: %w", err)
		}
		defer w.Stop()
		watched = make(chan error, 1)
		go func() {
			seen := 0
			for ev := range w.ResultChan() {
				if c, ok := ev.Object.(*certv1.CertificateSigningRequest); ok && csr.Issued(c) {
					if seen++; seen == len(todo) {
						watched <- nil
						return
					}
				}
			}
			watched <- fmt.Errorf("watch ended after %d of %d certificates", seen, len(todo))
		}()
	}
	var (
		wg     sync.WaitGroup
		next   atomic.Int64
		failed atomic.Value
	)
	for range benchWriterWorkers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(todo); i = int(next.Add(1)) - 1 {
				c := todo[i]
				c.Status.Certificate = certPEM
				if ca != nil {
					req, err := csr.ParseRequest(c.Spec.Request)
					if err != nil {
						failed.Store(fmt.Errorf("%s: %w", c.Name, err))
						continue
					}
					cert, err := csr.Sign(ca, req, c.Spec.Usages, time.Hour, time.Now())
					if err != nil {
						failed.Store(fmt.Errorf("%s: %w", c.Name, err))
						continue
					}
					c.Status.Certificate = pki.EncodeCert(cert)
				}
				if _, err := api.UpdateStatus(ctx, c, metav1.UpdateOptions{}); err != nil {
					failed.Store(fmt.Errorf("update status of %s: %w", c.Name, err))
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	if watched != nil {
		select {
		case err := <-watched:
			return err
		case <-time.After(time.Minute):
			return fmt.Errorf("watch: not all %d certificates seen within a minute", len(todo))
		}
	}
	return nil
}
