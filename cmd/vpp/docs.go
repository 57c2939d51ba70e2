package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// cliReferenceDir is where the generated CLI reference is committed,
// relative to the repository root (`make docs` writes it).
const cliReferenceDir = "docs/cli"

// cliReferenceHeader starts every generated page.
const cliReferenceHeader = "<!-- Generated from the cobra commands by `make docs` (vpp docs --dir docs/cli). Do not edit. -->\n\n"

func newDocsCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:    "docs",
		Short:  "Generate the Markdown CLI reference for every command",
		Hidden: true,
		Args:   cobra.NoArgs,
		Example: `  # rewrite the committed reference (what make docs runs)
  vpp docs --dir docs/cli`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeCLIReference(cmd.Root(), dir)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", cliReferenceDir, "directory to write the pages to (its vpp*.md files are replaced)")
	return cmd
}

// writeCLIReference writes one Markdown page per available command of
// root (vpp.md, vpp_sim.md, …) into dir, after removing the vpp*.md pages
// already there, so a removed command loses its page. The output depends
// only on the command tree: no date line, no version.
func writeCLIReference(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "vpp*.md"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("remove stale page: %w", err)
		}
	}
	// Execute adds the completion command; add it here too, so the tree is
	// the same whether this runs as `vpp docs` or from a test.
	root.InitDefaultCompletionCmd()
	disableAutoGenTag(root)
	header := func(string) string { return cliReferenceHeader }
	link := func(name string) string { return name }
	if err := doc.GenMarkdownTreeCustom(root, dir, header, link); err != nil {
		return fmt.Errorf("generate CLI reference: %w", err)
	}
	return nil
}

// disableAutoGenTag drops cobra's "Auto generated … on DATE" line from
// the pages of cmd and every command below it.
func disableAutoGenTag(cmd *cobra.Command) {
	cmd.DisableAutoGenTag = true
	for _, c := range cmd.Commands() {
		disableAutoGenTag(c)
	}
}
