package cni

import "time"

// hooks lets in-package tests act at named points of ADD and DEL: fail a
// step, time the netdev moves. Plugin.hooks is unexported and nil outside
// tests, so the binary runs with noHooks.
type hooks interface {
	// before is asked before each named ADD step; an error fails the step.
	before(step string) error
	// took receives the duration of each netdev move between namespaces
	// with its temporary rename ("move") and of the rename/MAC/MTU/up on
	// arrival ("rename"), on ADD and on DEL.
	took(step string, d time.Duration)
}

type noHooks struct{}

func (noHooks) before(string) error        { return nil }
func (noHooks) took(string, time.Duration) {}

func (p *Plugin) h() hooks {
	if p.hooks == nil {
		return noHooks{}
	}
	return p.hooks
}
