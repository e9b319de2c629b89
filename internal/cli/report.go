package cli

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/lifecycle"
	"kubepki.dev/kubepki/internal/reconcile"
	"kubepki.dev/kubepki/internal/report"
	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

func newReportCmd(e *env) *cobra.Command {
	var (
		f      specFlags
		lf     liveFlags
		output string
		html   string
	)
	cmd := &cobra.Command{
		Use:   "report --html FILE",
		Short: "Write an HTML page of the PKI: trust graph, expiry timeline, findings",
		Long: `Write one self-contained HTML page about a PKI directory, for people to look
at: a summary (certificates valid, expiring within 30 days, expired, and
verify's findings); the trust graph from each CA through the certificates it
signs and the kubeconfigs that carry them to the components that read them
(the files 'kubepki wiring' gives each component) and the nodes they run on,
coloured by state; an expiry timeline with a line at now; every finding of
verify with the command that fixes it; and a table of every certificate.

The page has its style inside, draws with inline SVG, runs no script and
fetches nothing when it is viewed: it can be mailed or attached to a ticket.
It holds certificates' public details only, never a private key. The file is
written atomically (mode 0644), replacing an older report; an existing
FILE that is not an HTML page (a key, a kubeconfig) is never replaced.

Works on directories kubepki did not write (kubeadm's, the hard way's openssl
output), as verify does. -o json|yaml prints the report's model (with or
without --html).

With --live (as verify --live: what each component serves, who each
kubeconfig is; --kubeconfig, --endpoint, --timeout) the page also lists the
live check's findings and warnings, source "live".

Exit 0 when verify (and --live) find nothing, 3 when there are findings (the
page is written either way); an expiring certificate is a warning, not a
finding.`,
		Example: `  kubepki report --html report.html --dir ./pki
  kubepki report --html /tmp/pki.html --dir /etc/kubernetes/pki
  kubepki report --dir ./pki -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if html == "" && output != "json" && output != "yaml" {
				return usageError("report: give --html FILE, or -o json|yaml for the report's model")
			}
			if html != "" {
				if err := replaceableReport(html); err != nil {
					return err
				}
			}
			overrides, err := lf.parse(cmd)
			if err != nil {
				return err
			}
			ro, err := f.openRead(e, "report")
			if err != nil {
				return err
			}
			defer ro.release()
			c, plan, st, leftovers := ro.c, ro.plan, ro.st, ro.leftovers
			now := e.now()
			// Keys are read only to compare them with their certificates,
			// whatever their modes: as verify, report audits, and
			// Permissions says what is unsafe.
			audit := st
			audit.Keys = store.KeyPolicy{Insecure: true}
			in := report.Input{
				Cluster:     c,
				Model:       resolve.Resolve(plan, audit),
				Statuses:    reconcile.Examine(plan, st, now),
				Permissions: reconcile.Permissions(plan, st),
				Now:         now,
				WarnWithin:  lifecycle.DefaultWarnWithin,
			}
			for _, l := range leftovers {
				in.Findings = append(in.Findings, leftoverFinding(f.dir, l))
			}
			if lf.live {
				res, err := checkLive(cmd.Context(), e, c, plan, audit, f.kubeconfig, overrides, lf.timeout)
				if err != nil {
					return err
				}
				for _, x := range res.Findings {
					in.Findings = append(in.Findings, report.Finding{Source: report.SourceLive, Subject: x.Subject, Message: x.Message, Fix: x.Fix})
				}
				for _, x := range res.Warnings {
					in.Findings = append(in.Findings, report.Finding{Source: report.SourceLive, Subject: x.Subject, Message: x.Message, Fix: x.Fix, Warning: true})
				}
			}
			rep := report.Build(in)
			if html != "" {
				var buf bytes.Buffer
				if err := report.HTML(&buf, rep); err != nil {
					return err
				}
				if err := store.Replace(html, buf.Bytes(), 0o644); err != nil {
					return fmt.Errorf("write %s: %w", html, err)
				}
			}
			if err := print(e.stdout, output, rep, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "%s: %d certificates: %d valid, %d expiring, %d expired; %d findings, %d warnings\n",
					html, len(rep.Certificates), rep.Counts.OK, rep.Counts.Expiring, rep.Counts.Expired, rep.Counts.Findings, rep.Counts.Warnings)
				return err
			}); err != nil {
				return err
			}
			if rep.Counts.Findings > 0 {
				return findings("%s: %d finding(s)", f.dir, rep.Counts.Findings)
			}
			return nil
		},
	}
	f.add(cmd, false)
	lf.add(cmd)
	addOutputFlag(cmd, &output)
	cmd.Flags().StringVar(&html, "html", "", "write the HTML report to FILE")
	_ = cmd.MarkFlagFilename("html", "html")
	return cmd
}

// leftoverFinding turns one of store.Leftovers' lines ("path: what it
// is") into a finding; init finishes or removes what they name.
func leftoverFinding(dir, line string) report.Finding {
	subject, msg := dir, line
	if p, rest, ok := strings.Cut(line, ": "); ok && strings.Contains(p, string(os.PathSeparator)) && !strings.Contains(p, " ") {
		subject, msg = p, rest
	}
	return report.Finding{Source: report.SourceVerify, Subject: subject, Message: msg, Fix: "kubepki init --dir " + dir}
}

// replaceableReport refuses an --html FILE that exists and is not an HTML
// page: a slip of the keyboard (--html pki/ca.key) must not replace a key,
// a certificate or a kubeconfig with the report. A symbolic link is fine:
// the atomic rename replaces the link, never the file it points to.
func replaceableReport(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 || (fi.Mode().IsRegular() && fi.Size() == 0) {
		return nil // missing (or unreadable: the write says why), a link, or empty
	}
	f, _, err := store.OpenRegular(path, store.KeyPolicy{}) // never blocks on a FIFO
	if err != nil {
		return usageError("--html: %v", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = bytes.ToLower(bytes.TrimLeft(bytes.TrimPrefix(head[:n], []byte("\xef\xbb\xbf")), " \t\r\n"))
	if !bytes.HasPrefix(head, []byte("<!doctype html")) && !bytes.HasPrefix(head, []byte("<html")) {
		return usageError("--html %s: exists and is not an HTML page: not replaced (remove it, or choose another FILE)", path)
	}
	return nil
}
