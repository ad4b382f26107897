package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cspconnector/csp-connector/connector/api"
	"github.com/cspconnector/csp-connector/connector/apiauth"
)

// apiCommand holds the HTTP API's offline helpers: its OpenAPI document and API key hashes.
func apiCommand(stdin io.Reader, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "api", Short: "The HTTP API's custom connector definition and API key hashes"}
	var publicURL string
	definition := &cobra.Command{
		Use:   "definition",
		Short: "Print the OpenAPI 2.0 document of /api/v1 (infra/powerplatform/apiDefinition.swagger.json)",
		Long: `Print the OpenAPI 2.0 document of the HTTP API, the custom connector definition Power Automate imports.
Without --public-url the host is the placeholder ` + api.DocumentHost + `, as in the checked-in file.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			doc, err := api.Definition(publicURL)
			if err != nil {
				return err
			}
			_, err = stdout.Write(doc)
			return err
		},
	}
	definition.Flags().StringVar(&publicURL, "public-url", "", "the connector's public URL (https://…): sets the document's host and scheme")
	var name, roles string
	hashKey := &cobra.Command{
		Use:   "hash-key",
		Short: "Read an API key on stdin and print its CONNECTOR_API_KEYS entry (only the hash is stored)",
		Long: `Read an API key (one line) on stdin and print the entry for CONNECTOR_API_KEYS: name=roles=sha256:<hex>.
Generate the key with a password manager or: openssl rand -base64 32. Give the key to the flow's
connection; put only the printed entry in the connector's configuration.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			key := strings.TrimSpace(line)
			if len(key) < 16 {
				return errors.New("the key on stdin is shorter than 16 characters: use a long random key (openssl rand -base64 32)")
			}
			entry := fmt.Sprintf("%s=%s=%s", name, roles, apiauth.HashKey(key))
			if _, err := apiauth.ParseAPIKeys(entry); err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, entry)
			return err
		},
	}
	hashKey.Flags().StringVar(&name, "name", "flows", "the key's name (it appears in logs and as a subscription's owner)")
	hashKey.Flags().StringVar(&roles, "roles", "operator", "reader, operator, or reader+operator")
	cmd.AddCommand(definition, hashKey)
	return cmd
}
