package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// envPrefix starts the environment variable of every flag: --max-frame-bytes
// is VPP_MAX_FRAME_BYTES.
const envPrefix = "VPP_"

// envName is the environment variable that sets a flag.
func envName(flag string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// documentEnv appends each flag's environment variable to its usage (unless
// the usage names it already), on cmd and every command below it, so --help
// shows it.
func documentEnv(cmd *cobra.Command) {
	mark := func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "$"+envName(f.Name)) {
			return
		}
		f.Usage += " [$" + envName(f.Name) + "]"
	}
	cmd.LocalNonPersistentFlags().VisitAll(mark)
	cmd.PersistentFlags().VisitAll(mark)
	for _, c := range cmd.Commands() {
		documentEnv(c)
	}
}

// applySettings fills every flag of cmd that was not given on the command
// line: from its environment variable, else from the config file. The
// config file is YAML: top-level keys are flag names for every command, and
// a key named after a command holds flags for that command only:
//
//	brokers: kafka-1:9092,kafka-2:9092
//	ingest:
//	  listen: 0.0.0.0:8080
//	  buffer-records: 200000
func applySettings(cmd *cobra.Command, configPath string) error {
	if configPath == "" {
		configPath = os.Getenv(envName("config"))
	}
	var file map[string]any
	if configPath != "" {
		b, err := os.ReadFile(configPath)
		if err != nil {
			return usageError{fmt.Errorf("read config: %w", err)}
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return usageError{fmt.Errorf("parse config %s: %w", configPath, err)}
		}
	}
	section, _ := file[cmd.Name()].(map[string]any)
	var errs []error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "config" || f.Name == "help" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("$%s: %w", envName(f.Name), err))
			}
			return
		}
		v, ok := section[f.Name]
		if !ok {
			v, ok = file[f.Name]
			if _, isSection := v.(map[string]any); isSection {
				ok = false
			}
		}
		if !ok {
			return
		}
		if err := setFromConfig(f, v); err != nil {
			errs = append(errs, fmt.Errorf("config %s: %s: %w", configPath, f.Name, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return usageError{err}
	}
	return nil
}

// setFromConfig sets f from a YAML value: a scalar, or a list for flags that
// take several values.
func setFromConfig(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		parts := make([]string, len(list))
		for i, e := range list {
			parts[i] = fmt.Sprint(e)
		}
		return f.Value.Set(strings.Join(parts, ","))
	}
	return f.Value.Set(fmt.Sprint(v))
}
