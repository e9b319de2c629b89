package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"
	certv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/pager"

	"kubepki.dev/kubepki/internal/csr"
)

// csrList is the document `csr list -o json|yaml` prints: a versioned
// envelope around csr.Summary items, sorted by name.
type csrList struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Items      []csr.Summary `json:"items"`
}

const (
	csrListAPIVersion = "kubepki.dev/v1alpha1"
	csrListKind       = "CertificateSigningRequestSummaryList"
)

func newCSRListCmd(e *env) *cobra.Command {
	var (
		kubeconfigPath, signer, output string
		pending                        bool
		chunkSize                      int64
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List CertificateSigningRequests with their condition and the subject and SANs they ask for",
		Long: `List the cluster's CertificateSigningRequests as 'kubectl get csr' does (NAME, AGE,
SIGNERNAME, REQUESTOR, REQUESTEDDURATION, CONDITION), and what each request asks
for, decoded from spec.request: the subject's CN and O (for a client certificate,
the user and groups it would authenticate as) and its SANs (DNS:, IP:, email:,
URI:). REQUESTOR is who created the object; CN is who the certificate would be for.
CONDITION is Pending, Approved or Denied, with ",Failed" when a signer gave up and
",Issued" once the certificate is there.

A request whose spec.request cannot be decoded is listed with
"unparseable request: <why>" in the SANS column (-o json: requestError).

--pending keeps only the requests nobody has approved, denied or failed yet (for
example the kubelet serving requests of new nodes); --signer keeps one signer's.
The list is read in pages of --chunk-size objects, as kubectl does.

-o json|yaml prints a stable document, not the API objects:
  apiVersion: kubepki.dev/v1alpha1
  kind: CertificateSigningRequestSummaryList
  items:
  - name, creationTimestamp, signerName, requestor, expirationSeconds (absent
    when not requested), usages, condition, pending (bool), commonName,
    organizations, dnsNames, ipAddresses, emailAddresses, uris, and
    requestError (only when spec.request does not decode)
Lists are never null. Fields may be added, never renamed.

Exit codes: 0 listed (also when there is nothing to list), 1 the cluster could
not be reached or refused the list, 2 usage.`,
		Example: `  kubepki csr list
  kubepki csr list --pending --signer kubernetes.io/kubelet-serving
  kubepki csr list -o json | jq -r '.items[] | select(.pending) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if signer != "" {
				if err := csr.ValidateSignerName(signer); err != nil {
					return usageError("--signer: %v", err)
				}
			}
			if chunkSize < 0 {
				return usageError("--chunk-size %d: want 0 (one request) or more", chunkSize)
			}
			cs, err := clientset(kubeconfigPath)
			if err != nil {
				return err
			}
			items, err := listCSRs(cmd.Context(), cs, signer, chunkSize, func(s csr.Summary) bool {
				return (!pending || s.Pending) && (signer == "" || s.SignerName == signer)
			})
			if err != nil {
				return err
			}
			return print(e.stdout, output, csrList{APIVersion: csrListAPIVersion, Kind: csrListKind, Items: items}, func(w io.Writer) error {
				if len(items) == 0 {
					_, err := fmt.Fprintln(e.stderr, "No CertificateSigningRequests found.")
					return err
				}
				return writeCSRTable(w, items, e.now())
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&pending, "pending", false, "only requests with no Approved, Denied or Failed condition")
	f.StringVar(&signer, "signer", "", "only requests for this spec.signerName, e.g. kubernetes.io/kubelet-serving")
	f.Int64Var(&chunkSize, "chunk-size", 500, "read the list in pages of this many objects (0: all in one response)")
	f.StringVar(&kubeconfigPath, "kubeconfig", "", "kubeconfig (default $KUBECONFIG or ~/.kube/config)")
	addOutputFlag(cmd, &output)
	return cmd
}

// listCSRs reads every CertificateSigningRequest page by page (the signer
// filter is applied by the API server, as a field selector), keeps the
// summaries keep accepts and returns them sorted by name. Only summaries
// are kept, not the objects, so a large list is never held whole.
func listCSRs(ctx context.Context, cs kubernetes.Interface, signer string, chunkSize int64, keep func(csr.Summary) bool) ([]csr.Summary, error) {
	api := cs.CertificatesV1().CertificateSigningRequests()
	p := pager.New(pager.SimplePageFunc(func(o metav1.ListOptions) (runtime.Object, error) {
		return api.List(ctx, o)
	}))
	p.PageSize = chunkSize
	opts := metav1.ListOptions{}
	if signer != "" {
		opts.FieldSelector = fields.OneTermEqualSelector("spec.signerName", signer).String()
	}
	items := []csr.Summary{}
	err := p.EachListItem(ctx, opts, func(obj runtime.Object) error {
		c, ok := obj.(*certv1.CertificateSigningRequest)
		if !ok {
			return fmt.Errorf("list certificatesigningrequests: unexpected %T in the list", obj)
		}
		if s := csr.Summarize(c); keep(s) {
			items = append(items, s)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list certificatesigningrequests: %w", err)
	}
	csr.SortSummaries(items)
	return items, nil
}

// csrListHeader are the table's columns: kubectl get csr's, then what the
// request asks for.
var csrListHeader = []string{"NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION", "CN", "O", "SANS"}

// csrRow is one table row for s at now. Every cell that comes from the
// request or the object is made safe for a terminal (see cell).
func csrRow(s csr.Summary, now time.Time) []string {
	age := "<unknown>"
	if !s.CreationTimestamp.IsZero() {
		age = duration.HumanDuration(now.Sub(s.CreationTimestamp))
	}
	requested := "<none>"
	if s.ExpirationSeconds != nil {
		requested = duration.HumanDuration(time.Duration(*s.ExpirationSeconds) * time.Second)
	}
	signer := s.SignerName
	if signer == "" {
		signer = "<none>"
	}
	cn, o, sans := s.CommonName, strings.Join(s.Organizations, ","), sanList(s)
	if s.RequestError != "" {
		cn, o, sans = "<unparseable>", "<unparseable>", "unparseable request: "+s.RequestError
	}
	return []string{
		cell(s.Name), age, cell(signer), cell(s.Requestor), requested, s.Condition,
		orNone(cell(cn)), orNone(cell(o)), orNone(cell(sans)),
	}
}

// sanList is the request's SANs as openssl names their kinds.
func sanList(s csr.Summary) string {
	var out []string
	for _, group := range []struct {
		prefix string
		names  []string
	}{{"DNS:", s.DNSNames}, {"IP:", s.IPAddresses}, {"email:", s.EmailAddresses}, {"URI:", s.URIs}} {
		for _, n := range group.names {
			out = append(out, group.prefix+n)
		}
	}
	return strings.Join(out, ",")
}

// cell makes text from a CertificateSigningRequest safe to print in a
// table: its requester chooses the subject and SANs, which may hold tabs,
// newlines, terminal escape sequences or bytes that are not UTF-8 (a lone
// 0x9b is CSI to some terminals). Such text is printed quoted, with Go
// escapes, so it can neither break the table nor drive the terminal.
func cell(s string) string {
	if !utf8.ValidString(s) {
		return strconv.QuoteToGraphic(s)
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || r == '\t' {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// writeCSRTable writes items as a table like kubectl's.
func writeCSRTable(w io.Writer, items []csr.Summary, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, strings.Join(csrListHeader, "\t"))
	for _, s := range items {
		fmt.Fprintln(tw, strings.Join(csrRow(s, now), "\t"))
	}
	return tw.Flush()
}
