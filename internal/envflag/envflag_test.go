package envflag

import (
	"bytes"
	"flag"
	"strings"
	"testing"
	"time"
)

func TestFlagsTakeEnvironmentDefaultsAndFlagsWin(t *testing.T) {
	env := map[string]string{"FEATURESTORE_ADDR": ":9000", "FEATURESTORE_CACHE_TTL": "2m",
		"FEATURESTORE_MAX": "7", "FEATURESTORE_PASSWORD": "s3cret"}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	s := New(fs, func(k string) string { return env[k] })
	var addr, pw string
	var ttl time.Duration
	var max int64
	s.String(&addr, "addr", ":8001", "address")
	s.Duration(&ttl, "cache-ttl", time.Hour, "ttl")
	s.Int64(&max, "max", 1, "max")
	s.Secret(&pw, "password", "password", func(string) string { return "****" })
	if err := fs.Parse([]string{"--max", "9"}); err != nil || s.Err() != nil {
		t.Fatal(err, s.Err())
	}
	if addr != ":9000" || ttl != 2*time.Minute || max != 9 || pw != "s3cret" {
		t.Fatalf("addr=%q ttl=%v max=%d pw=%q", addr, ttl, max, pw)
	}
	fs.PrintDefaults()
	if strings.Contains(out.String(), "s3cret") || !strings.Contains(out.String(), "FEATURESTORE_PASSWORD") {
		t.Fatalf("--help:\n%s", out.String())
	}
}

func TestMalformedEnvironmentIsReported(t *testing.T) {
	env := map[string]string{"FEATURESTORE_TTL": "soon", "FEATURESTORE_N": "many"}
	s := New(flag.NewFlagSet("t", flag.ContinueOnError), func(k string) string { return env[k] })
	var d time.Duration
	var n int64
	s.Duration(&d, "ttl", time.Second, "")
	s.Int64(&n, "n", 1, "")
	err := s.Err()
	if err == nil || !strings.Contains(err.Error(), "FEATURESTORE_TTL") || !strings.Contains(err.Error(), "FEATURESTORE_N") {
		t.Fatalf("Err() = %v", err)
	}
}
