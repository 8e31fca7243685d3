package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"", slog.LevelWarn}, {"debug", slog.LevelDebug}, {"verbose", slog.LevelDebug}, {"DEBUG", slog.LevelDebug},
		{"info", slog.LevelInfo}, {"warn", slog.LevelWarn}, {"warning", slog.LevelWarn},
		{"error", slog.LevelError}, {"panic", slog.LevelError},
	}
	for _, tc := range tests {
		if got := Level(tc.in); got != tc.want {
			t.Errorf("Level(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestLevelsFilter: lines below the level are not written, lines at or
// above it are, with the container and pod on each.
func TestLevelsFilter(t *testing.T) {
	tests := []struct {
		level string
		want  []string // messages written of debug, info, warn, error
	}{
		{"debug", []string{"d", "i", "w", "e"}},
		{"info", []string{"i", "w", "e"}},
		{"", []string{"w", "e"}},
		{"error", []string{"e"}},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		log, closeLog := NewWithOptions(Options{Level: tc.level, ToStderr: true, Stderr: &buf}, "c1", "ns/p")
		log.Debug("d")
		log.Info("i")
		log.Warn("w")
		log.Error("e")
		closeLog()
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if !strings.Contains(line, "container=c1 pod=ns/p") {
				t.Errorf("level %q: line %q lacks container and pod", tc.level, line)
			}
			if i := strings.Index(line, "msg="); i >= 0 {
				got = append(got, strings.Fields(line[i+4:])[0])
			}
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("level %q: wrote %v, want %v", tc.level, got, tc.want)
		}
	}
}

// TestOff: without a file and stderr nothing is written and no file made.
func TestOff(t *testing.T) {
	var buf bytes.Buffer
	log, closeLog := NewWithOptions(Options{Level: "debug", Stderr: &buf}, "c", "p")
	log.Error("x")
	closeLog()
	if buf.Len() != 0 {
		t.Fatalf("wrote %q with logging off", buf.String())
	}
	if log.Enabled(t.Context(), slog.LevelError) {
		t.Fatal("a logger with no output must not be enabled (callers skip building lines)")
	}
}

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	log, closeLog := NewWithOptions(Options{Level: "info", ToStderr: true, Format: "json", Stderr: &buf}, "c1", "ns/p")
	log.Info("attached", "interfaces", 2)
	closeLog()
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("not one JSON object: %q: %v", buf.String(), err)
	}
	if m["msg"] != "attached" || m["container"] != "c1" || m["pod"] != "ns/p" || m["interfaces"] != float64(2) || m["level"] != "INFO" {
		t.Fatalf("JSON line %v", m)
	}
}

// TestFileAndStderr: lines go to both; the file is created 0600.
func TestFileAndStderr(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "plexus.log")
	var buf bytes.Buffer
	log, closeLog := NewWithOptions(Options{File: file, Level: "info", ToStderr: true, Stderr: &buf, Rotation: DefaultRotation}, "c", "p")
	log.Info("one")
	closeLog()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "msg=one") || !strings.Contains(buf.String(), "msg=one") {
		t.Fatalf("file %q, stderr %q", b, buf.String())
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Fatalf("log file mode %v, want 0600", fi.Mode().Perm())
	}
	// A second process appends.
	log, closeLog = New(file, "info", false, "c", "p")
	log.Info("two")
	closeLog()
	b, _ = os.ReadFile(file)
	if !strings.Contains(string(b), "msg=one") || !strings.Contains(string(b), "msg=two") {
		t.Fatalf("file after second logger: %q", b)
	}
}

// TestRotation: a file that would grow beyond MaxSizeMB is moved aside
// (name-<timestamp>.log) and a new one started; MaxBackups bounds the
// backups once lumberjack's cleanup has run.
func TestRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "plexus.log")
	big := bytes.Repeat([]byte("x"), 1024*1024-10)
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	log, closeLog := NewWithOptions(Options{File: file, Level: "info", Rotation: Rotation{MaxSizeMB: 1, MaxBackups: 1}}, "c", "p")
	log.Info("after rotation")
	closeLog()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 1024 || !strings.Contains(string(b), "after rotation") {
		t.Fatalf("current log holds %d bytes; want only the new line", len(b))
	}
	backups, _ := filepath.Glob(filepath.Join(dir, "plexus-*.log"))
	if len(backups) != 1 {
		t.Fatalf("backups %v, want one", backups)
	}
	if fi, _ := os.Stat(backups[0]); fi.Size() != int64(len(big)) {
		t.Fatalf("backup has %d bytes, want the old file's %d", fi.Size(), len(big))
	}
	// With the default rotation (100 MB) the same write appends. (A fresh
	// directory: lumberjack's background goroutine would gzip the backup
	// above while the test's directory is removed.)
	file = filepath.Join(t.TempDir(), "plexus.log")
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	log, closeLog = NewWithOptions(Options{File: file, Level: "info", Rotation: DefaultRotation}, "c", "p")
	log.Info("appended")
	closeLog()
	if fi, _ := os.Stat(file); fi.Size() <= int64(len(big)) {
		t.Fatalf("default rotation (100 MB) rotated a 1 MB file")
	}
}

// TestUnwritableFileReported: a logFile that cannot be opened is reported on
// stderr once, naming the key, and stderr logging goes on.
func TestUnwritableFileReported(t *testing.T) {
	dir := t.TempDir()
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		toStderr bool
	}{{"file only", false}, {"file and stderr", true}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			file := filepath.Join(notADir, "plexus.log") // parent is a file
			log, closeLog := NewWithOptions(Options{File: file, Level: "info", ToStderr: tc.toStderr, Stderr: &buf}, "c", "p")
			log.Info("first")
			log.Info("second")
			closeLog()
			out := buf.String()
			if n := strings.Count(out, `key "logFile": cannot write `+file); n != 1 {
				t.Fatalf("stderr reports the file %d times, want once:\n%s", n, out)
			}
			if got := strings.Contains(out, "msg=second"); got != tc.toStderr {
				t.Fatalf("stderr logging with toStderr=%v: %q", tc.toStderr, out)
			}
		})
	}
}
