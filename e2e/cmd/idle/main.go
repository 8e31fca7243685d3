// Command idle is a Go program that does nothing until it is killed: the
// memory floor of any Go process, measured beside plexusd's RSS in the same
// run. It prints "ready" once it is waiting.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, os.Interrupt)
	fmt.Println("ready")
	<-c
}
