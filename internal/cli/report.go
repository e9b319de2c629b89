package cli

import (
	"bytes"
	"fmt"
	"io"
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
written atomically (mode 0644), replacing an older report.

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
			overrides, err := lf.parse(cmd)
			if err != nil {
				return err
			}
			c, plan, err := f.load()
			if err != nil {
				return err
			}
			if _, err := os.Stat(f.dir); err != nil {
				return fmt.Errorf("report: %w", err)
			}
			st := f.store(e, plan.Profile)
			release, leftovers, err := forRead(e, st)
			if err != nil {
				return err
			}
			defer release()
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
