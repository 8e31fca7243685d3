package lightlib

func Light() {}
