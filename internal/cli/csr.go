package cli

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	watchtools "k8s.io/client-go/tools/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/yaml"

	"kubepki.dev/kubepki/internal/csr"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/pki"
	"kubepki.dev/kubepki/internal/store"
)

func newCSRCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "csr",
		Short: "Create, list, approve, deny and fetch CertificateSigningRequests (the Certificates API)",
		Long: `Issue certificates through the cluster's Certificates API (certificates.k8s.io/v1)
instead of with the CA key: the user flow of the Kubernetes docs page "Certificates and
Certificate Signing Requests", without openssl and base64 by hand.

  1. kubepki csr create jane --cn jane --group developers --apply
     (a new key in jane.key, 0600, and the CertificateSigningRequest object)
  2. kubepki csr approve jane      (or: kubectl certificate approve jane)
  3. a signer issues the certificate: kube-controller-manager, or 'kubepki controller'
  4. kubepki csr fetch jane --key jane.key --kubeconfig-out jane.kubeconfig

'kubepki csr list' is 'kubectl get csr' with the subject and SANs each request
asks for; 'kubepki csr list --pending' shows what still awaits a decision, such as
the kubelet serving requests of new nodes.

The cluster is reached with --kubeconfig, else $KUBECONFIG, else ~/.kube/config.`,
	}
	cmd.AddCommand(newCSRCreateCmd(e), newCSRListCmd(e), newCSRDecideCmd(e, true), newCSRDecideCmd(e, false), newCSRFetchCmd(e))
	return cmd
}

// clientConfig loads a kubeconfig as kubectl does: the explicit path, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
func clientConfig(path string) clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
}

// clientset builds a typed client from a kubeconfig path.
func clientset(path string) (kubernetes.Interface, error) {
	cfg, err := clientConfig(path).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	return cs, nil
}

func newCSRCreateCmd(e *env) *cobra.Command {
	var (
		cn, signer, keyAlg, keyOut, keyIn, kubeconfigPath, output string
		groups, usages, dnsNames, ips                             []string
		expiration                                                time.Duration
		apply                                                     bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME --cn CN",
		Short: "Make a key and a CertificateSigningRequest, and print it or create it on the cluster",
		Long: `Generate a private key (written to --key-out, default NAME.key, mode 0600; an
existing file is never overwritten) or use --key, make a PKCS#10 request for
CN=--cn and O=each --group, and wrap it in a certificates.k8s.io/v1
CertificateSigningRequest named NAME. Without --apply the object is printed as
YAML, ready for kubectl create -f; with --apply it is created on the cluster.

The usages default to what the signer expects for the key: digital signature
(and key encipherment for RSA keys) with client auth, or server auth for
kubernetes.io/kubelet-serving. --dns and --ip add SANs, which only the
kubelet-serving and custom signers accept. --expiration sets
spec.expirationSeconds (at least 10m); the signer may shorten it.`,
		Example: `  kubepki csr create jane --cn jane --group developers > jane.yaml
  kubepki csr create jane --cn jane --group developers --apply --expiration 720h
  kubepki csr create etcd-backup --cn etcd-backup --signer kubepki.dev/etcd-client --apply`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if cn == "" {
				return usageError("--cn is required")
			}
			if err := csr.ValidateSignerName(signer); err != nil {
				return usageError("--signer: %v", err)
			}
			if expiration != 0 && expiration < csr.MinDuration {
				return usageError("--expiration %s: the API server requires at least %s", expiration, csr.MinDuration)
			}
			if keyIn != "" && cmd.Flags().Changed("key-out") {
				return usageError("--key and --key-out exclude each other")
			}
			var ipAddrs []net.IP
			for _, s := range ips {
				ip := net.ParseIP(s)
				if ip == nil {
					return usageError("--ip %q is not an IP address", s)
				}
				ipAddrs = append(ipAddrs, ip)
			}
			var apiUsages []certv1.KeyUsage
			for _, u := range usages {
				apiUsages = append(apiUsages, certv1.KeyUsage(u))
			}
			if _, _, err := csr.KeyUsages(apiUsages); err != nil {
				return usageError("--usage: %v", err)
			}
			switch output {
			case "yaml", "json":
			default:
				return usageError("unknown output format %q (want yaml or json)", output)
			}

			var cs kubernetes.Interface
			if apply {
				var err error
				if cs, err = clientset(kubeconfigPath); err != nil {
					return err
				}
			}
			key, err := csrKey(e, keyIn, keyOut, name, keyAlg)
			if err != nil {
				return err
			}
			der, err := pki.CreateCSR(key, pki.Profile{
				Subject:  pki.Subject{CommonName: cn, Organization: groups},
				DNSNames: dnsNames,
				IPs:      ipAddrs,
			})
			if err != nil {
				return err
			}
			if len(apiUsages) == 0 {
				apiUsages = csr.DefaultUsages(signer, key.Public())
			}
			obj := csr.NewObject(csr.Request{Name: name, SignerName: signer, PEM: pki.EncodeCSR(der), Usages: apiUsages, Expiration: expiration})
			if !apply {
				return printManifest(e.stdout, output, obj)
			}
			created, err := cs.CertificatesV1().CertificateSigningRequests().Create(cmd.Context(), obj, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("create certificatesigningrequest %s: %w", name, err)
			}
			fmt.Fprintf(e.stdout, "certificatesigningrequest/%s created (signer %s, requested by %s)\n", created.Name, created.Spec.SignerName, created.Spec.Username)
			fmt.Fprintf(e.stdout, "approve it with: kubepki csr approve %s   (or kubectl certificate approve %s)\n", name, name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cn, "cn", "", "subject CN: the user name the certificate authenticates as (required)")
	f.StringSliceVar(&groups, "group", nil, "subject O: a group, repeatable")
	f.StringVar(&signer, "signer", certv1.KubeAPIServerClientSignerName, "spec.signerName")
	f.StringSliceVar(&usages, "usage", nil, "spec.usages entry, repeatable (default: what the signer expects for the key)")
	f.StringSliceVar(&dnsNames, "dns", nil, "DNS subjectAltName, repeatable")
	f.StringSliceVar(&ips, "ip", nil, "IP subjectAltName, repeatable")
	f.DurationVar(&expiration, "expiration", 0, "spec.expirationSeconds, e.g. 24h (default: the signer's)")
	f.StringVar(&keyAlg, "key-algorithm", string(pki.DefaultKeyAlgorithm), "algorithm of the new key")
	f.StringVar(&keyOut, "key-out", "", "file for the new private key (default NAME.key; never overwritten)")
	f.StringVar(&keyIn, "key", "", "use this existing private key instead of generating one")
	f.BoolVar(&apply, "apply", false, "create the object on the cluster instead of printing it")
	f.StringVar(&kubeconfigPath, "kubeconfig", "", "kubeconfig for --apply (default $KUBECONFIG or ~/.kube/config)")
	f.StringVarP(&output, "output", "o", "yaml", "format of the printed object: yaml or json")
	return cmd
}

// csrKey reads keyIn, or generates a key and writes it to keyOut (default
// NAME.key) before anything else happens, so that it is never lost.
func csrKey(e *env, keyIn, keyOut, name, alg string) (crypto.Signer, error) {
	if keyIn != "" {
		data, err := readKey(e, keyIn)
		if err != nil {
			return nil, fmt.Errorf("read key: %w", err)
		}
		key, err := pki.ParseKey(data)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", keyIn, err)
		}
		return key, nil
	}
	a, err := pki.ParseKeyAlgorithm(alg)
	if err != nil {
		return nil, usageError("--key-algorithm: %v", err)
	}
	if keyOut == "" {
		keyOut = name + ".key"
	}
	if store.Exists(keyOut) {
		return nil, fmt.Errorf("%s already exists; not overwriting a private key (use --key to reuse it, or --key-out)", keyOut)
	}
	key, err := pki.GenerateKey(a)
	if err != nil {
		return nil, err
	}
	keyPEM, err := pki.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	if err := store.Create(keyOut, keyPEM, store.KeyMode); err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "wrote %s (%s private key, mode 0600)\n", keyOut, a)
	return key, nil
}

// printManifest prints a CSR as a manifest for kubectl create -f: no
// status, no null creationTimestamp.
func printManifest(w io.Writer, format string, obj *certv1.CertificateSigningRequest) error {
	data, err := json.Marshal(obj)
	if err != nil {
		return fmt.Errorf("encode %s: %w", obj.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("encode %s: %w", obj.Name, err)
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(m)
	}
	out, err := yaml.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %s: %w", obj.Name, err)
	}
	_, err = w.Write(out)
	return err
}

// newCSRDecideCmd is csr approve (approve true) or csr deny.
func newCSRDecideCmd(e *env, approve bool) *cobra.Command {
	var reason, message, kubeconfigPath string
	verb, past, condType := "approve", "approved", certv1.CertificateApproved
	if !approve {
		verb, past, condType = "deny", "denied", certv1.CertificateDenied
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME...",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " CertificateSigningRequests, as kubectl certificate " + verb + " does",
		Long: `Add the ` + string(condType) + ` condition to each named CertificateSigningRequest through
its approval subresource, as 'kubectl certificate ` + verb + `' does. Your user needs the
"approve" verb on the signers resource for the request's signer name.
A request already ` + past + ` is left as it is; one already decided the other
way is an error. Conflicting writes are retried on the fresh object.`,
		Example: "  kubepki csr " + verb + " jane\n  kubepki csr " + verb + " jane john --reason Policy --message 'checked with the team lead'",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("csr %s: name at least one CertificateSigningRequest", verb)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cs, err := clientset(kubeconfigPath)
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				msg, err := decide(cmd.Context(), cs, name, condType, reason, message, e.now())
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(e.stdout, "certificatesigningrequest/%s %s\n", name, msg)
			}
			return errors.Join(errs...)
		},
	}
	defReason, defMessage := "KubepkiApprove", "This CSR was approved by kubepki csr approve."
	if !approve {
		defReason, defMessage = "KubepkiDeny", "This CSR was denied by kubepki csr deny."
	}
	cmd.Flags().StringVar(&reason, "reason", defReason, "condition reason (CamelCase)")
	cmd.Flags().StringVar(&message, "message", defMessage, "condition message")
	cmd.Flags().StringVar(&kubeconfigPath, "kubeconfig", "", "kubeconfig (default $KUBECONFIG or ~/.kube/config)")
	return cmd
}

// decide adds the condition to one CSR; it returns what happened.
func decide(ctx context.Context, cs kubernetes.Interface, name string, t certv1.RequestConditionType, reason, message string, now time.Time) (string, error) {
	var result string
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c, err := cs.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if csr.HasCondition(c, t) {
			result = "already " + strings.ToLower(string(t))
			return nil
		}
		if csr.Decided(c) {
			return fmt.Errorf("is already %s", strings.ToLower(csr.State(c)))
		}
		c.Status.Conditions = append(c.Status.Conditions, certv1.CertificateSigningRequestCondition{
			Type:           t,
			Status:         corev1.ConditionTrue,
			Reason:         reason,
			Message:        message,
			LastUpdateTime: metav1.NewTime(now),
		})
		if _, err := cs.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, name, c, metav1.UpdateOptions{}); err != nil {
			return err
		}
		result = strings.ToLower(string(t))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("certificatesigningrequest %s: %w", name, err)
	}
	return result, nil
}

func newCSRFetchCmd(e *env) *cobra.Command {
	var (
		keyFile, outCert, kubeconfigOut, kubeconfigPath string
		wait                                            time.Duration
	)
	cmd := &cobra.Command{
		Use:   "fetch NAME --key FILE",
		Short: "Wait for a CertificateSigningRequest's certificate and write it, and a kubeconfig",
		Long: `Wait up to --wait for the signer to put a certificate in the
CertificateSigningRequest's status (watching it, not polling), check that the
certificate is for the private key in --key, and write it to --out-cert
(default NAME.crt). With --kubeconfig-out, also write a kubeconfig for the
certificate's user (CN): the server and CA of your current kubeconfig context,
the certificate and key embedded, mode 0600. Existing files are never
overwritten.

A request that is denied, or that its signer marks Failed, is an error
(exit 1) that gives the condition's reason and message.`,
		Example: `  kubepki csr fetch jane --key jane.key --kubeconfig-out jane.kubeconfig
  kubepki csr fetch jane --key jane.key --wait 0   # only if already issued`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if keyFile == "" {
				return usageError("--key is required: the certificate is checked against it")
			}
			keyPEM, err := readKey(e, keyFile)
			if err != nil {
				return fmt.Errorf("read key: %w", err)
			}
			key, err := pki.ParseKey(keyPEM)
			if err != nil {
				return fmt.Errorf("read key %s: %w", keyFile, err)
			}
			if outCert == "" {
				outCert = name + ".crt"
			}
			for _, p := range []string{outCert, kubeconfigOut} {
				if p != "" && store.Exists(p) {
					return fmt.Errorf("%s already exists; not overwriting it", p)
				}
			}
			cc := clientConfig(kubeconfigPath)
			rest, err := cc.ClientConfig()
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w", err)
			}
			cs, err := kubernetes.NewForConfig(rest)
			if err != nil {
				return fmt.Errorf("client for %s: %w", rest.Host, err)
			}
			obj, err := waitIssued(cmd.Context(), cs, name, wait)
			if err != nil {
				return err
			}
			certs, err := pki.ParseCerts(obj.Status.Certificate)
			if err != nil {
				return fmt.Errorf("certificatesigningrequest %s: status.certificate: %w", name, err)
			}
			cert := certs[0]
			if !pki.KeyMatches(cert.PublicKey, key) {
				return fmt.Errorf("certificatesigningrequest %s: the certificate is not for the key in %s", name, keyFile)
			}
			if err := store.Create(outCert, obj.Status.Certificate, store.CertMode); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: user %s, groups [%s], valid until %s\n", outCert, cert.Subject.CommonName,
				strings.Join(cert.Subject.Organization, ", "), cert.NotAfter.UTC().Format(time.RFC3339))
			if kubeconfigOut == "" {
				return nil
			}
			raw, err := cc.RawConfig()
			if err != nil {
				return fmt.Errorf("load kubeconfig: %w", err)
			}
			clusterName, server, caPEM, err := currentCluster(raw, rest.Host)
			if err != nil {
				return err
			}
			user := cert.Subject.CommonName
			cfg := kubeconfig.New(kubeconfig.Params{
				Cluster: clusterName, User: user, Context: user + "@" + clusterName, Server: server,
				CA: caPEM, Cert: obj.Status.Certificate, Key: keyPEM,
			})
			if err := kubeconfig.Create(kubeconfigOut, cfg); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "wrote %s: user %s on %s (%s)\n", kubeconfigOut, user, clusterName, server)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyFile, "key", "", "the private key the request was made with (required)")
	f.DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the certificate (0: do not wait)")
	f.StringVar(&outCert, "out-cert", "", "certificate file to write (default NAME.crt)")
	f.StringVar(&kubeconfigOut, "kubeconfig-out", "", "also write a kubeconfig for the certificate's user")
	f.StringVar(&kubeconfigPath, "kubeconfig", "", "kubeconfig (default $KUBECONFIG or ~/.kube/config)")
	return cmd
}

// waitIssued watches one CSR until it has a certificate; denied or failed
// is an error. wait 0 reads it once.
func waitIssued(ctx context.Context, cs kubernetes.Interface, name string, wait time.Duration) (*certv1.CertificateSigningRequest, error) {
	check := func(c *certv1.CertificateSigningRequest) (bool, error) {
		if cond := csr.Condition(c, certv1.CertificateDenied); cond != nil {
			return false, fmt.Errorf("certificatesigningrequest %s was denied: %s: %s", name, cond.Reason, cond.Message)
		}
		if cond := csr.Condition(c, certv1.CertificateFailed); cond != nil {
			return false, fmt.Errorf("certificatesigningrequest %s failed: %s: %s", name, cond.Reason, cond.Message)
		}
		return csr.Issued(c), nil
	}
	api := cs.CertificatesV1().CertificateSigningRequests()
	if wait <= 0 {
		c, err := api.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("certificatesigningrequest %s: %w", name, err)
		}
		if ok, err := check(c); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("certificatesigningrequest %s has no certificate yet (%s); use --wait", name, csr.State(c))
		}
		return c, nil
	}
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return api.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return api.Watch(ctx, o)
		},
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var last *certv1.CertificateSigningRequest
	ev, err := watchtools.UntilWithSync(wctx, lw, &certv1.CertificateSigningRequest{}, nil, func(ev watch.Event) (bool, error) {
		c, ok := ev.Object.(*certv1.CertificateSigningRequest)
		if !ok {
			return false, nil
		}
		if ev.Type == watch.Deleted {
			return false, fmt.Errorf("certificatesigningrequest %s was deleted", name)
		}
		last = c
		return check(c)
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, watchtools.ErrWatchClosed) || wctx.Err() != nil {
			state := "not found"
			if last != nil {
				state = csr.State(last)
			}
			return nil, fmt.Errorf("certificatesigningrequest %s: no certificate after %s (%s)", name, wait, state)
		}
		return nil, err
	}
	return ev.Object.(*certv1.CertificateSigningRequest), nil
}

// currentCluster returns the current context's cluster: its name, server
// and CA (embedded data, or the file it names, read now).
func currentCluster(raw clientcmdapi.Config, host string) (name, server string, caPEM []byte, err error) {
	ctxName := raw.CurrentContext
	c, ok := raw.Contexts[ctxName]
	if !ok {
		return "", "", nil, fmt.Errorf("kubeconfig: current context %q not found", ctxName)
	}
	cl, ok := raw.Clusters[c.Cluster]
	if !ok {
		return "", "", nil, fmt.Errorf("kubeconfig: cluster %q of context %q not found", c.Cluster, ctxName)
	}
	caPEM = cl.CertificateAuthorityData
	if len(caPEM) == 0 && cl.CertificateAuthority != "" {
		if caPEM, err = store.ReadFile(cl.CertificateAuthority, store.KeyPolicy{Insecure: true}); err != nil {
			return "", "", nil, fmt.Errorf("kubeconfig: cluster %q: %w", c.Cluster, err)
		}
	}
	if len(caPEM) == 0 {
		return "", "", nil, fmt.Errorf("kubeconfig: cluster %q has no certificate authority to copy", c.Cluster)
	}
	server = cl.Server
	if server == "" {
		server = host
	}
	return c.Cluster, server, caPEM, nil
}
