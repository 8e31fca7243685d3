// fakeplugin stands in for an installed CNI binary in the upgrade tests: a
// real ELF executable (so the kernel's deny-write on running executables
// applies) that prints its version or, with "sleep", stays busy a while.
//
// With "loop BIN STOPFILE" it plays the container runtime: it execs BIN
// over and over until STOPFILE exists and prints a JSON summary of the
// outputs and failures. It runs as its own process so that it inherits no
// file the installer has open for writing (in one multi-threaded Go
// process, a fork racing with the writer would hold the temp file's
// descriptor and cause an ETXTBSY no runtime could see).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"time"
)

var version = "unset"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "sleep" {
		time.Sleep(3 * time.Second)
	}
	if len(os.Args) == 4 && os.Args[1] == "loop" {
		loop(os.Args[2], os.Args[3])
		return
	}
	fmt.Print(version)
}

func loop(bin, stopFile string) {
	sum := struct {
		Outputs  map[string]int `json:"outputs"`
		Failures []string       `json:"failures"`
	}{Outputs: map[string]int{}}
	for {
		if _, err := os.Stat(stopFile); err == nil {
			break
		}
		out, err := exec.Command(bin).Output()
		if err != nil {
			sum.Failures = append(sum.Failures, err.Error())
			continue
		}
		sum.Outputs[string(out)]++
	}
	_ = json.NewEncoder(os.Stdout).Encode(sum)
}
