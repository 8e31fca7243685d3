package cni

import (
	"fmt"
	"io"
	"os"
	"time"
)

var levels = map[string]int{"panic": 0, "error": 1, "warning": 2, "info": 3, "debug": 4}

// logger writes leveled lines to logFile (or stderr when only logLevel is
// set); with neither set it is silent. Stdout stays reserved for results.
type logger struct {
	w     io.Writer
	level int
	close func()
}

func newLogger(level, file string) *logger {
	l := &logger{level: levels["info"], close: func() {}}
	if lv, ok := levels[level]; ok {
		l.level = lv
	}
	switch {
	case file != "":
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sriov: logFile %s: %v\n", file, err)
			return l
		}
		l.w, l.close = f, func() { _ = f.Close() }
	case level != "":
		l.w = os.Stderr
	}
	return l
}

func (l *logger) logf(level, format string, args ...any) {
	if l == nil || l.w == nil || levels[level] > l.level {
		return
	}
	fmt.Fprintf(l.w, "%s [%s] sriov: %s\n", time.Now().UTC().Format(time.RFC3339Nano), level, fmt.Sprintf(format, args...))
}

func (l *logger) Infof(format string, args ...any)  { l.logf("info", format, args...) }
func (l *logger) Debugf(format string, args ...any) { l.logf("debug", format, args...) }
func (l *logger) Warnf(format string, args ...any)  { l.logf("warning", format, args...) }
func (l *logger) Errorf(format string, args ...any) { l.logf("error", format, args...) }
