package testutil

import (
	"bufio"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Plexusd is a plexusd process a test runs (the built binary).
type Plexusd struct {
	T       testing.TB
	Bin     string
	Args    []string
	Socket  string
	Metrics string // host:port of /metrics and /readyz
	LogFile string
	cmd     *exec.Cmd
}

// StartPlexusd runs plexusd with args plus --socket, --metrics-address on a
// free loopback port and --log-level debug, waits until /readyz answers
// 200, and SIGKILLs it when the test ends.
func StartPlexusd(t testing.TB, socket, logFile string, args ...string) *Plexusd {
	t.Helper()
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ml.Addr().String()
	ml.Close()
	d := &Plexusd{T: t, Bin: BuildBinary(t, "plexusd"), Socket: socket, Metrics: addr, LogFile: logFile,
		Args: append([]string{"--socket", socket, "--metrics-address", addr, "--log-level", "debug"}, args...)}
	d.Start()
	t.Cleanup(d.Kill)
	return d
}

// Start starts plexusd (again) and waits until it is ready.
func (d *Plexusd) Start() {
	d.T.Helper()
	f, err := os.OpenFile(d.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.T.Fatal(err)
	}
	defer f.Close()
	d.cmd = exec.Command(d.Bin, d.Args...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		d.T.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + d.Metrics + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Not ready: it must not outlive the test (a leaked plexusd's watches
	// hold up the next test's API server).
	d.Kill()
	d.T.Fatalf("plexusd not ready within 30s:\n%s", d.Log())
}

// Kill SIGKILLs plexusd (a crash: nothing is cleaned up).
func (d *Plexusd) Kill() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Signal(syscall.SIGKILL)
		d.cmd.Wait()
		d.cmd = nil
	}
}

// PID is plexusd's process ID (0 when not running).
func (d *Plexusd) PID() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log is plexusd's output so far.
func (d *Plexusd) Log() string {
	b, _ := os.ReadFile(d.LogFile)
	return string(b)
}

// Metric is the sum of the samples of metric name whose label sets
// contain every one of labels (each `key="value"`).
func (d *Plexusd) Metric(name string, labels ...string) float64 {
	d.T.Helper()
	resp, err := http.Get("http://" + d.Metrics + "/metrics")
	if err != nil {
		d.T.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}
