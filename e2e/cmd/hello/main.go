// Command hello is a hello-world Go program: the benchmarks' exec floor.
// Start-up and overhead targets are ratios against it, timed in the same
// run, because these machines' speed varies from day to day.
//
// With one argument, a file path, it also writes 2 KiB to that path
// crash-safely (temp file, fsync, rename, fsync of the directory): the
// physical floor of an ADD through a shim, one exec plus one durable write
// of the intent (docs/observability.md, "ADD against the floor"). It does so
// with the standard library only, so that its start-up stays hello-world's.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) == 2 {
		if err := durableWrite(os.Args[1], bytes.Repeat([]byte{'x'}, 2048)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Println("hello, world")
}

func durableWrite(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
