package attach

// go vet analyzes attach together with this file; the finding stays.
func helper() {}
