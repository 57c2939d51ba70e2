package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// screenLogger is the logger of a command that may own the terminal (the
// dashboard): every record to the log file when path is set; otherwise
// warnings and errors to warnTo, or nothing when warnTo is nil (logs must
// not corrupt the screen). close closes the file.
func screenLogger(path string, warnTo io.Writer) (logger *slog.Logger, close func(), err error) {
	if path != "" {
		lf, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, fmt.Errorf("open log file: %w", err)
		}
		return slog.New(slog.NewTextHandler(lf, nil)), func() { _ = lf.Close() }, nil
	}
	if warnTo != nil {
		return slog.New(slog.NewTextHandler(warnTo, &slog.HandlerOptions{Level: slog.LevelWarn})), func() {}, nil
	}
	return slog.New(slog.DiscardHandler), func() {}, nil
}
