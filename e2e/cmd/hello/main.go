// Command hello is a hello-world Go program: the benchmarks' exec floor.
// Start-up and overhead targets are ratios against it, timed in the same
// run, because these machines' speed varies from day to day.
package main

import "fmt"

func main() { fmt.Println("hello, world") }
