package cluster

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one component (etcd, kube-apiserver, containerd, kubelet) run
// from a binary with its output in a log file. It can also be re-attached by
// pid (localcluster down), in which case it is not our child.
type process struct {
	Name string `json:"name"`
	Bin  string `json:"bin"`
	Pid  int    `json:"pid"`
	Log  string `json:"log"`

	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs bin with args in its own process group (so a terminal's
// Ctrl-C reaches the harness, which stops it in order), appending its output
// to logFile.
func startProcess(name, bin string, args []string, logFile string, env []string) (*process, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "---- %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	p := &process{Name: name, Bin: bin, Pid: cmd.Process.Pid, Log: logFile, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

// exited reports whether the process is gone.
func (p *process) exited() bool {
	if p == nil || p.Pid == 0 {
		return true
	}
	if p.done != nil {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	}
	return !pidIsRunning(p.Pid, p.Bin)
}

// pidIsRunning reports whether pid is alive (not a zombie) and runs bin, so
// that a recycled pid is never signalled.
func pidIsRunning(pid int, bin string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
		return false
	}
	if bin == "" {
		return true
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	want, err := filepath.EvalSymlinks(bin)
	if err != nil {
		want = bin
	}
	return exe == want || filepath.Base(exe) == filepath.Base(want)
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs and waits again.
func (p *process) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(p.Pid, syscall.SIGTERM)
	if p.wait(grace) {
		return nil
	}
	_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	if p.wait(10 * time.Second) {
		return fmt.Errorf("%s (pid %d) did not stop within %s of SIGTERM; killed", p.Name, p.Pid, grace)
	}
	return fmt.Errorf("%s (pid %d) survives SIGKILL", p.Name, p.Pid)
}

func (p *process) wait(d time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if p.exited() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p.exited()
}

// tail returns the last n lines of a log file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("---- last %d lines of %s\n%s", len(lines), path, strings.Join(lines, "\n"))
}

// waitFor polls cond every interval until it returns true or an error, or
// until timeout; what names the wait in the error.
func waitFor(what string, timeout, interval time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			if last != nil {
				return fmt.Errorf("%s: not ready after %s: %w", what, timeout, last)
			}
			return fmt.Errorf("%s: not ready after %s", what, timeout)
		}
		time.Sleep(interval)
	}
}

// keepLogs copies dir's *.log files to $PLEXUS_E2E_KEEP_LOGS/<base of dir>/
// when that variable is set, before dir is removed.
func keepLogs(dir string) {
	dest := os.Getenv("PLEXUS_E2E_KEEP_LOGS")
	if dest == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		return
	}
	to := filepath.Join(dest, filepath.Base(dir))
	if err := os.MkdirAll(to, 0o755); err != nil {
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(to, filepath.Base(l)), b, 0o644)
		}
	}
}
