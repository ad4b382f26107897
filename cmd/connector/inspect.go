package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector/event"
)

// maxInspectSize bounds what inspect reads: Dataverse never posts more than 256 KB.
const maxInspectSize = 4 << 20

func inspectCommand(stdin io.Reader, stdout io.Writer) *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "inspect <file|->",
		Short: "Decode a Dataverse event message (for example a dead-lettered one); needs no configuration",
		Long: `Decode the RemoteExecutionContext JSON that Dataverse posts to Service Bus or a webhook, and print
what happened to which row, who caused it, and every value. Read a file, or - for standard input.
It needs no configuration. --output json prints one JSON object for scripts.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			body, err := io.ReadAll(io.LimitReader(r, maxInspectSize+1))
			if err != nil {
				return err
			}
			if len(body) > maxInspectSize {
				return fmt.Errorf("the message is larger than %d bytes; Dataverse messages are at most 256 KB", maxInspectSize)
			}
			e, err := event.Decode(body)
			if err != nil {
				return err
			}
			if output == outputJSON {
				return writeJSON(stdout, event.Inspect(e))
			}
			event.WriteInspect(stdout, e)
			return nil
		},
	}
	addOutputFlag(cmd.Flags(), &output)
	return cmd
}
