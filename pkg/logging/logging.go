// Package logging sets up plexus's slog logger from its config: logFile,
// logLevel, logToStderr. Every line carries the container ID and the pod.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// New returns a logger and a function that closes its file.
func New(logFile, level string, toStderr bool, containerID, pod string) (*slog.Logger, func()) {
	var ws []io.Writer
	closeFn := func() {}
	if logFile != "" {
		if f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			ws = append(ws, f)
			closeFn = func() { f.Close() }
		}
	}
	if toStderr {
		ws = append(ws, os.Stderr)
	}
	if len(ws) == 0 {
		return slog.New(slog.DiscardHandler), closeFn
	}
	h := slog.NewTextHandler(io.MultiWriter(ws...), &slog.HandlerOptions{Level: Level(level)})
	return slog.New(h).With("container", containerID, "pod", pod), closeFn
}

// Level maps Multus-style level names to slog levels (default info).
func Level(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug", "verbose":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "panic":
		return slog.LevelError
	}
	return slog.LevelInfo
}
