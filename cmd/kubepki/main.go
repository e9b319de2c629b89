// Command kubepki owns a Kubernetes cluster's PKI end to end.
package main

import (
	"os"

	"kubepki.dev/kubepki/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
