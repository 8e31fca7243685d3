// Package logging sets up plexus's slog logger from its config: logFile
// (rotated as Multus rotates it, with lumberjack), logLevel, logToStderr,
// logFormat. Every line carries the container ID and the pod.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"gopkg.in/natefinch/lumberjack.v2"
)

// Rotation says when logFile is rotated and which old files are kept
// (Multus's logOptions). Zero MaxSizeMB means lumberjack's 100 MB; zero
// MaxAgeDays and MaxBackups keep old files forever.
type Rotation struct {
	MaxSizeMB  int
	MaxAgeDays int
	MaxBackups int
	Compress   bool
}

// DefaultRotation is Multus's: 100 MB files, 5 backups, 5 days, gzipped.
var DefaultRotation = Rotation{MaxSizeMB: 100, MaxAgeDays: 5, MaxBackups: 5, Compress: true}

// Options configure a logger.
type Options struct {
	File     string // append here, rotated per Rotation ("" = no file)
	Level    string // see Level
	ToStderr bool
	Format   string // "text" (default) or "json"
	Rotation Rotation
	// Stderr receives stderr logging and the report of a logFile that
	// cannot be written; nil means os.Stderr. Set by tests.
	Stderr io.Writer
}

// New returns a logger with Multus's default rotation and a function that
// closes its file.
func New(logFile, level string, toStderr bool, containerID, pod string) (*slog.Logger, func()) {
	return NewWithOptions(Options{File: logFile, Level: level, ToStderr: toStderr, Rotation: DefaultRotation}, containerID, pod)
}

// NewWithOptions returns a logger and a function that closes its file. With
// neither a file nor stderr it returns a discarding logger and does no work.
// The file is opened at the first line written: a file that cannot be
// opened or written is reported once on stderr, naming the logFile key, and
// the line still goes to stderr when logToStderr is set.
func NewWithOptions(o Options, containerID, pod string) (*slog.Logger, func()) {
	if o.File == "" && !o.ToStderr {
		return slog.New(slog.DiscardHandler), func() {}
	}
	stderr := o.Stderr
	if stderr == nil {
		stderr = os.Stderr
	}
	var ws []io.Writer
	closeFn := func() {}
	if o.File != "" {
		lj := &lumberjack.Logger{
			Filename: o.File, MaxSize: o.Rotation.MaxSizeMB, MaxAge: o.Rotation.MaxAgeDays,
			MaxBackups: o.Rotation.MaxBackups, Compress: o.Rotation.Compress,
		}
		ws = append(ws, &reportingWriter{w: lj, file: o.File, stderr: stderr})
		closeFn = func() { lj.Close() }
	}
	if o.ToStderr {
		ws = append(ws, stderr)
	}
	w := ws[0]
	if len(ws) > 1 {
		w = io.MultiWriter(ws...)
	}
	hopts := &slog.HandlerOptions{Level: Level(o.Level)}
	var h slog.Handler
	if o.Format == "json" {
		h = slog.NewJSONHandler(w, hopts)
	} else {
		h = slog.NewTextHandler(w, hopts)
	}
	return slog.New(h).With("container", containerID, "pod", pod), closeFn
}

// reportingWriter writes to the log file; its first failure is reported on
// stderr, and it never returns an error, so that io.MultiWriter still
// writes the line to stderr.
type reportingWriter struct {
	w      io.Writer
	file   string
	stderr io.Writer
	once   sync.Once
}

func (r *reportingWriter) Write(p []byte) (int, error) {
	if _, err := r.w.Write(p); err != nil {
		r.once.Do(func() {
			fmt.Fprintf(r.stderr, "plexus: key \"logFile\": cannot write %s: %v; lines for it are lost\n", r.file, err)
		})
	}
	return len(p), nil
}

// Level maps Multus-style level names to slog levels. The default (an empty
// or unknown name) is warn: a successful ADD or DEL writes nothing, as under
// Multus, whose default level prints only panics.
func Level(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug", "verbose":
		return slog.LevelDebug
	case "info":
		return slog.LevelInfo
	case "error", "panic":
		return slog.LevelError
	}
	return slog.LevelWarn
}
