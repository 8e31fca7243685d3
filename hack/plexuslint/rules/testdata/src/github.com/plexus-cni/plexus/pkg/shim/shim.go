package shim

import "lightlib"

func Run() { lightlib.Light() }
