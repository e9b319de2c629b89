package cli

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/exporter"
	"kubepki.dev/kubepki/internal/kubeconfig"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// DefaultExporterListen is the exporter's default address: loopback, so
// that nothing is exposed unless asked; 9794 is next to
// x509-certificate-exporter's 9793, so both can run on one host network.
const DefaultExporterListen = "127.0.0.1:9794"

func newExporterCmd(e *env) *cobra.Command {
	var (
		f              specFlags
		watchFiles     []string
		watchKCs       []string
		served         []string
		servedInterval time.Duration
		servedTimeout  time.Duration
		listen         string
		logFormat      string
	)
	cmd := &cobra.Command{
		Use:   "exporter",
		Short: "Serve Prometheus metrics on the certificates of a PKI directory and on what components really serve",
		Long: `Serve Prometheus metrics on every certificate of a PKI directory (kubeadm's
/etc/kubernetes/pki with the kubeconfigs of /etc/kubernetes, kubelet.conf on the
kubelet's kubelet-client-current.pem included; the hard way's; kubepki's), of
extra files (--watch-file globs) and kubeconfigs (--watch-kubeconfig; embedded
certificates and files they refer to), and on the certificates the cluster's
components really serve (--kubeconfig's API server, --served).

The x509_* metrics are those of enix/x509-certificate-exporter, with the same
labels (filename, filepath, embedded_kind, embedded_key, serial_number,
subject_CN, subject_O, subject_OU, issuer_CN, issuer_O), so its dashboards and
alerts work unchanged; one series per certificate of a bundle:
  x509_cert_not_after, x509_cert_not_before     Unix seconds
  x509_cert_expired                             1 once expired
  x509_cert_expires_in_seconds                  computed at each scrape
  x509_cert_error, x509_read_errors             unreadable files or kubeconfig entries
and what a file reader cannot tell:
  kubepki_cert_key_mismatch        the key beside a certificate is not its key
  kubepki_cert_chain_broken        not signed by its CA (the plan's, or the
                                   directory's, its bundle's, its kubeconfig's)
  kubepki_served_cert_mismatch     a component serves another certificate than
                                   its file: redistribute the node's files
                                   (kubepki bundle, kubepki distribute) and
                                   restart it
  kubepki_served_cert_not_after    what the component serves (serial, CN, issuer)
  kubepki_served_check_error, kubepki_served_check_timestamp_seconds
  kubepki_exporter_file_reads_total

A scrape stats each file and reads again only those whose size, mtime or inode
changed; series of a removed file disappear. Components are dialled every
--served-interval, never by a scrape. --served takes COMPONENT=HOST:PORT or
COMPONENT=HOST:PORT=CERTFILE; without CERTFILE, the plan's certificate named
COMPONENT is compared (kube-apiserver: the API server's). The directory is read
only when --dir, --config or --from-cluster is given; private keys are read
only for their public half, which is compared and never exported.

Serves /metrics and /healthz on --listen until SIGTERM or SIGINT, then lets
running scrapes finish. Logs JSON lines on stderr, one at start.`,
		Example: `  # on a kubeadm control-plane node (run as root: the keys are 0600 root)
  kubepki exporter --dir /etc/kubernetes/pki --profile kubeadm \
    --watch-file '/var/lib/kubelet/pki/*.crt' \
    --kubeconfig /etc/kubernetes/admin.conf \
    --served etcd-server=127.0.0.1:2379 \
    --served kube-scheduler=127.0.0.1:10259 \
    --served kube-controller-manager=127.0.0.1:10257 \
    --listen 0.0.0.0:9794`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(e, logFormat, "info")
			if err != nil {
				return err
			}
			for _, g := range watchFiles {
				if _, err := filepath.Match(g, ""); err != nil {
					return usageError("--watch-file %q: %v", g, err)
				}
			}
			targets, err := parseServed(served)
			if err != nil {
				return err
			}
			if servedInterval <= 0 {
				return usageError("--served-interval %s: want a positive duration", servedInterval)
			}
			if servedTimeout <= 0 {
				return usageError("--served-timeout %s: want a positive duration", servedTimeout)
			}
			cfg := exporter.Config{WatchFiles: watchFiles, WatchKubeconfigs: watchKCs, Log: log, Now: e.now, ServedTimeout: servedTimeout}
			if f.dir != "" || f.config != "" || f.fromCluster {
				// What loading the spec says on stderr (the spec inferred
				// from the directory) goes into the JSON log.
				var said bytes.Buffer
				cmd.SetErr(&said)
				_, plan, err := f.load()
				cmd.SetErr(e.stderr)
				for line := range strings.Lines(said.String()) {
					log.Info(strings.TrimSpace(line))
				}
				if err != nil {
					return err
				}
				if f.dir == "" {
					return usageError("--dir: the PKI directory of --config")
				}
				if _, err := os.Stat(f.dir); err != nil {
					return fmt.Errorf("exporter: %w", err)
				}
				st := f.store(e, plan.Profile)
				// Only public halves of keys are used: see exporter's cache.
				st.Keys = store.KeyPolicy{Insecure: true}
				cfg.Directory = &exporter.Directory{Plan: plan, Store: st}
			}
			if f.kubeconfig != "" {
				t, err := apiServerTarget(f.kubeconfig)
				if err != nil {
					return err
				}
				targets = append([]exporter.Target{t}, targets...)
			}
			for i := range targets {
				if targets[i].CertFile == "" && cfg.Directory != nil {
					targets[i].CertFile = planCertFile(cfg.Directory, targets[i].Component)
				}
			}
			cfg.Served = targets

			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", listen, err)
			}
			var servedLog []string
			for _, t := range targets {
				servedLog = append(servedLog, t.Component+"="+t.Address+"="+t.CertFile)
			}
			log.Info("kubepki exporter started", "listen", ln.Addr().String(), "dir", f.dir,
				"watch_files", watchFiles, "watch_kubeconfigs", watchKCs, "served", servedLog, "served_interval", servedInterval.String())
			err = exporter.Serve(cmd.Context(), ln, exporter.New(cfg), servedInterval, log)
			log.Info("kubepki exporter stopped")
			return err
		},
	}
	f.add(cmd, false)
	fl := cmd.Flags()
	f.dir = ""
	fl.Lookup("dir").DefValue = ""
	fl.Lookup("dir").Usage = "PKI directory to export, also spelled --cert-dir (e.g. /etc/kubernetes/pki; default with a kubeadm configuration: its certificatesDir; none: only --watch-* files)"
	fl.Lookup("kubeconfig").Usage = "kubeconfig whose current context's API server is dialled, and its served certificate compared with the plan's API server certificate (also read by --from-cluster)"
	fl.StringArrayVar(&watchFiles, "watch-file", nil, "glob of PEM files or kubeconfigs to export too (repeatable; filepath.Match syntax, e.g. '/var/lib/kubelet/pki/*.crt')")
	fl.StringArrayVar(&watchKCs, "watch-kubeconfig", nil, "kubeconfig to export too, with its embedded or referenced certificates (repeatable; a missing one is a read error)")
	fl.StringArrayVar(&served, "served", nil, "COMPONENT=HOST:PORT[=CERTFILE]: a component whose served certificate is compared with CERTFILE (default: the plan's certificate named COMPONENT) (repeatable)")
	fl.DurationVar(&servedInterval, "served-interval", time.Minute, "how often components are dialled (never per scrape)")
	fl.DurationVar(&servedTimeout, "served-timeout", 10*time.Second, "bound of one TLS handshake with a --served component")
	fl.StringVar(&listen, "listen", DefaultExporterListen, "address for /metrics and /healthz (0.0.0.0:9794 to be scraped from elsewhere)")
	fl.StringVar(&logFormat, "log-format", "json", "log format: json or text")
	return cmd
}

// parseServed reads --served COMPONENT=HOST:PORT[=CERTFILE] values.
func parseServed(values []string) ([]exporter.Target, error) {
	var out []exporter.Target
	for _, v := range values {
		parts := strings.SplitN(v, "=", 3)
		if len(parts) < 2 || parts[0] == "" {
			return nil, usageError("--served %q: want COMPONENT=HOST:PORT[=CERTFILE], e.g. kube-scheduler=127.0.0.1:10259", v)
		}
		host, port, err := net.SplitHostPort(parts[1])
		if err != nil || host == "" || port == "" {
			return nil, usageError("--served %q: %q is not HOST:PORT", v, parts[1])
		}
		t := exporter.Target{Component: parts[0], Address: parts[1]}
		if net.ParseIP(host) == nil {
			t.ServerName = host
		}
		if len(parts) == 3 {
			if parts[2] == "" {
				return nil, usageError("--served %q: empty CERTFILE", v)
			}
			t.CertFile = parts[2]
		}
		out = append(out, t)
	}
	return out, nil
}

// apiServerTarget is the API server of a kubeconfig's current context.
func apiServerTarget(path string) (exporter.Target, error) {
	cfg, err := kubeconfig.Load(path)
	if err != nil {
		return exporter.Target{}, err
	}
	cl, _, err := kubeconfig.Current(cfg)
	if err != nil {
		return exporter.Target{}, fmt.Errorf("%s: %w", path, err)
	}
	u, err := url.Parse(cl.Server)
	if err != nil || u.Hostname() == "" {
		return exporter.Target{}, fmt.Errorf("%s: server %q is not a URL", path, cl.Server)
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	t := exporter.Target{Component: "kube-apiserver", Address: net.JoinHostPort(u.Hostname(), port)}
	if net.ParseIP(u.Hostname()) == nil {
		t.ServerName = u.Hostname()
	}
	return t, nil
}

// planCertFile is the file of the plan's certificate a component serves:
// kube-apiserver is the API server's, any other name a certificate's
// ("etcd-server", "kube-scheduler"). "" when the plan has none of that name
// in a file of its own.
func planCertFile(d *exporter.Directory, component string) string {
	name := component
	if component == "kube-apiserver" {
		spec, ok := d.Plan.APIServerCert()
		if !ok {
			return ""
		}
		name = spec.Name
	}
	if _, ok := d.Plan.Cert(name); !ok {
		return ""
	}
	c, ok := resolve.Resolve(d.Plan, d.Store).Cert(name)
	if !ok || c.Location.Kind() != resolve.Files {
		return ""
	}
	return c.Location.Path()
}
