// Package cli is kubepki's command line: cobra commands that parse flags,
// call the packages that do the work, and print. Nothing imports it but main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"kubepki.dev/kubepki/internal/resolve"
	"kubepki.dev/kubepki/internal/store"
)

// Exit codes scripts can rely on.
const (
	ExitOK = 0
	// ExitError: the command failed.
	ExitError = 1
	// ExitUsage: bad flags or arguments.
	ExitUsage = 2
	// ExitFindings: the command ran, and what it checked is not clean
	// (verify found problems, lint found errors, init left drift untouched).
	ExitFindings = 3
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// findings returns an error that exits with ExitFindings after msg.
func findings(format string, args ...any) error {
	return &exitError{code: ExitFindings, err: fmt.Errorf(format, args...)}
}

func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// nameError makes a certificate or kubeconfig name on the command line
// that the plan does not have a usage error; other errors pass through.
func nameError(err error) error {
	var u *resolve.UnknownNameError
	if errors.As(err, &u) {
		return &exitError{code: ExitUsage, err: err}
	}
	return err
}

// env is what commands share: streams, the clock, and the global flags.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	now    func() time.Time
	// insecureKeys is --insecure-key-permissions.
	insecureKeys bool
}

// insecureKeysFlag lets kubepki read keys it refuses by default.
const insecureKeysFlag = "insecure-key-permissions"

// keyPolicy is which private key files commands read.
func (e *env) keyPolicy() store.KeyPolicy {
	return store.KeyPolicy{Insecure: e.insecureKeys}
}

// Main runs kubepki with args and returns the process exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now}
	if v := os.Getenv("KUBEPKI_NOW"); v != "" {
		// A fixed clock for tests of expiry behaviour.
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			e.now = func() time.Time { return t }
		}
	}
	root := newRoot(e)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(stderr, "kubepki: %s\n", explain(err))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isFlagError(err) {
		return ExitUsage
	}
	return ExitError
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubepki",
		Short: "Own a Kubernetes cluster's PKI end to end",
		Long: `kubepki creates, checks and maintains every certificate a Kubernetes cluster needs,
from one declarative cluster spec (or the embedded default, or an imported
Kubernetes-the-Hard-Way ca.conf), in the hard-way or the kubeadm layout.

Exit codes: 0 ok, 1 error, 2 usage, 3 findings (verify/lint/plan/init found
problems; check-expiration: something expires soon), 4 check-expiration:
something has expired.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.PersistentFlags().BoolVar(&e.insecureKeys, insecureKeysFlag, false, "read private keys that are symbolic links, owned by another user, or readable by group or others (refused by default)")
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newVersionCmd(e),
		newConfigCmd(e),
		newInitCmd(e),
		newPlanCmd(e),
		newVerifyCmd(e),
		newReportCmd(e),
		newInspectCmd(e),
		newBundleCmd(e),
		newWiringCmd(e),
		newKubeconfigCmd(e),
		newCertsCmd(e),
		newSignCmd(e),
		newDistributeCmd(e),
		newCSRCmd(e),
		newControllerCmd(e),
		newExporterCmd(e),
	)
	usageArgs(root)
	kubeadmWords(root)
	return root
}

// usageArgs makes a wrong positional argument a usage error (exit 2), as a
// wrong flag is: cobra returns both as plain errors (exit 1), and answers an
// unknown subcommand of a command group with the group's help and exit 0.
func usageArgs(c *cobra.Command) {
	for _, sub := range c.Commands() {
		usageArgs(sub)
	}
	if c.HasSubCommands() && !c.Runnable() {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		if c.Args == nil {
			c.Args = unknownCommand
		}
	}
	if check := c.Args; check != nil {
		c.Args = func(cmd *cobra.Command, args []string) error {
			err := check(cmd, args)
			if err == nil || isFlagError(err) {
				return err
			}
			return usageError("%v", err)
		}
	}
}

// unknownCommand rejects any argument to a command group.
func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
	}
	return usageError("%s", msg)
}

// explain adds to a refusal to read an unsafe key how to get past it: the
// command that tightens a PKI directory's modes, and the flag that reads
// the key as it is. The store knows neither.
func explain(err error) string {
	msg := err.Error()
	var unsafe *store.UnsafeFileError
	if !errors.As(err, &unsafe) {
		return msg
	}
	hint := ""
	if unsafe.Mode && unsafe.Managed {
		hint = " (or kubepki init, which tightens it)"
	}
	hint += ", or pass --" + insecureKeysFlag
	inner := unsafe.Error()
	if !strings.Contains(msg, inner) {
		return msg + "; " + strings.TrimPrefix(hint, ", ")
	}
	return strings.Replace(msg, inner, inner+hint, 1)
}

func isFlagError(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.code == ExitUsage
}

func newVersionCmd(e *env) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kubepki's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Version   string `json:"version"`
				GoVersion string `json:"goVersion"`
			}{Version: "(devel)"}
			if bi, ok := debug.ReadBuildInfo(); ok {
				v.GoVersion = bi.GoVersion
				if bi.Main.Version != "" {
					v.Version = bi.Main.Version
				}
			}
			return print(e.stdout, output, v, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "kubepki %s (%s)\n", v.Version, v.GoVersion)
				return err
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
