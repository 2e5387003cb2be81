package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/common/promslog"
)

// TestLogQuotesControlCharacters logs a process name and an error that hold
// a terminal escape and a newline, in both --log.format values: each
// record stays one line, and no raw control character reaches the log.
func TestLogQuotesControlCharacters(t *testing.T) {
	const hostile = "\x1b[31mred\nforged=record\r\x07"
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			f := promslog.NewFormat()
			if err := f.Set(format); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			logger := promslog.New(&promslog.Config{Format: f, Writer: &out})
			logger.Warn("collector failed", "process", hostile, "err", errors.New(hostile))
			record := strings.TrimSuffix(out.String(), "\n")
			if strings.ContainsFunc(record, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Errorf("the record holds a raw control character: %q", record)
			}
			if format == "json" {
				var fields map[string]any
				if err := json.Unmarshal([]byte(record), &fields); err != nil || fields["process"] != hostile {
					t.Errorf("the JSON record does not carry the name intact: %v, %q", err, fields["process"])
				}
			}
		})
	}
}
