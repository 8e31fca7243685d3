package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/plexus-cni/plexus/pkg/logging"
)

// LogOptions is Multus's logOptions: rotation of logFile. Unset fields take
// Multus's defaults (logging.DefaultRotation) in Load.
type LogOptions struct {
	MaxAge     *int  `json:"maxAge,omitempty"`     // days to keep rotated files (0: forever)
	MaxSize    *int  `json:"maxSize,omitempty"`    // MB before rotating (0: 100)
	MaxBackups *int  `json:"maxBackups,omitempty"` // rotated files kept (0: all)
	Compress   *bool `json:"compress,omitempty"`   // gzip rotated files
}

func (o *LogOptions) validate() error {
	if o == nil {
		return nil
	}
	for _, f := range []struct {
		key string
		v   *int
	}{{"maxAge", o.MaxAge}, {"maxSize", o.MaxSize}, {"maxBackups", o.MaxBackups}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("plexus config: key \"logOptions.%s\": must not be negative", f.key)
		}
	}
	return nil
}

func (o *LogOptions) withDefaults() *LogOptions {
	d := logging.DefaultRotation
	out := &LogOptions{MaxAge: &d.MaxAgeDays, MaxSize: &d.MaxSizeMB, MaxBackups: &d.MaxBackups, Compress: &d.Compress}
	if o == nil {
		return out
	}
	if o.MaxAge != nil {
		out.MaxAge = o.MaxAge
	}
	if o.MaxSize != nil {
		out.MaxSize = o.MaxSize
	}
	if o.MaxBackups != nil {
		out.MaxBackups = o.MaxBackups
	}
	if o.Compress != nil {
		out.Compress = o.Compress
	}
	return out
}

// Logging returns the logger options of this config (logFile, logLevel,
// logToStderr, logFormat, logOptions) for logging.NewWithOptions.
func (c *Conf) Logging() logging.Options {
	o := logging.Options{File: c.LogFile, Level: c.LogLevel, ToStderr: c.LogToStderr, Format: c.LogFormat, Rotation: logging.DefaultRotation}
	if lo := c.LogOptions; lo != nil {
		if lo.MaxAge != nil {
			o.Rotation.MaxAgeDays = *lo.MaxAge
		}
		if lo.MaxSize != nil {
			o.Rotation.MaxSizeMB = *lo.MaxSize
		}
		if lo.MaxBackups != nil {
			o.Rotation.MaxBackups = *lo.MaxBackups
		}
		if lo.Compress != nil {
			o.Rotation.Compress = *lo.Compress
		}
	}
	return o
}

// nestedKeys are the keys allowed inside plexus's object-valued keys; "*"
// stands for any key (a namespace name).
var nestedKeys = map[string][]string{
	"logOptions":                  {"maxAge", "maxSize", "maxBackups", "compress"},
	"delegatePolicy":              {"default", "namespaces"},
	"delegatePolicy.default":      {"allow"},
	"delegatePolicy.namespaces":   {"*"},
	"delegatePolicy.namespaces.*": {"allow"},
}

// checkNestedKeys refuses unknown keys inside key's object value (and its
// nested objects), naming the full key. Values that are not objects are
// left to the type check.
func checkNestedKeys(key string, raw json.RawMessage) error {
	pattern := key
	if strings.HasPrefix(key, "delegatePolicy.namespaces.") {
		pattern = "delegatePolicy.namespaces.*"
	}
	allowed, ok := nestedKeys[pattern]
	if !ok || raw == nil {
		return nil
	}
	var obj map[string]json.RawMessage
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&obj) != nil {
		return nil
	}
	wild := len(allowed) == 1 && allowed[0] == "*"
	var names []string
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !wild && !contains(allowed, k) {
			return fmt.Errorf("plexus config: key %q: unknown key %q (known: %s)", key, k, strings.Join(allowed, ", "))
		}
		if err := checkNestedKeys(key+"."+k, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
