package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// addOutputFlag adds -o/--output with the text default. An unknown format
// is a flag error, so a command fails on it before doing any work.
func addOutputFlag(cmd *cobra.Command, output *string) {
	*output = "text"
	cmd.Flags().VarP(outputFormat{output}, "output", "o", "output format: text, json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"text", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp))
}

// print writes v as JSON or YAML, or calls text for the text format.
func print(w io.Writer, format string, v any, text func(io.Writer) error) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	case "text", "":
		return text(w)
	}
	return usageError("unknown output format %q (want text, json or yaml)", format)
}

// outputFormat is the value of -o: text, json or yaml.
type outputFormat struct{ p *string }

func (o outputFormat) String() string { return *o.p }
func (o outputFormat) Type() string   { return "string" }
func (o outputFormat) Set(v string) error {
	switch v {
	case "text", "json", "yaml":
		*o.p = v
		return nil
	}
	return fmt.Errorf("unknown output format %q (want text, json or yaml)", v)
}
