package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// siegeSummary is siege's summary of a run. Transactions are the answers
// below 400; failed transactions are the answers from 400 on and the
// requests that got no answer.
type siegeSummary struct {
	Transactions    float64 `json:"transactions"`
	Availability    float64 `json:"availability"`
	ElapsedTime     float64 `json:"elapsed_time"`
	TransactionRate float64 `json:"transaction_rate"`
	Failed          float64 `json:"failed_transactions"`
}

// siegeLine matches a line of siege's text summary, for a siege that does
// not print JSON: "Transaction rate:	  615.30 trans/sec".
var siegeLine = regexp.MustCompile(`(?m)^\s*(Transactions|Availability|Elapsed time|Transaction rate|Failed transactions):\s+([0-9.]+)`)

// parseSiege reads siege's summary out of its output: the JSON object that
// json_output prints, or else the text lines.
func parseSiege(out string) (siegeSummary, error) {
	var s siegeSummary
	if start, end := strings.Index(out, "{"), strings.LastIndex(out, "}"); start >= 0 && end > start {
		if err := json.Unmarshal([]byte(out[start:end+1]), &s); err != nil {
			return s, fmt.Errorf("siege's JSON summary: %w", err)
		}
		return s, nil
	}
	fields := map[string]*float64{
		"Transactions": &s.Transactions, "Availability": &s.Availability, "Elapsed time": &s.ElapsedTime,
		"Transaction rate": &s.TransactionRate, "Failed transactions": &s.Failed,
	}
	matches := siegeLine.FindAllStringSubmatch(out, -1)
	for _, m := range matches {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return s, fmt.Errorf("siege's summary line %q: %w", m[0], err)
		}
		*fields[m[1]] = v
		delete(fields, m[1])
	}
	if len(fields) > 0 {
		return s, fmt.Errorf("no summary in siege's output: %q", lastLines(out, 3))
	}
	return s, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " / ")
}

// siegeLoad drives url with siege for duration (in whole seconds, siege's
// unit), in benchmark mode (no delay between requests).
func siegeLoad(ctx context.Context, dir, url string, concurrency int, duration time.Duration) (loadResult, error) {
	rc := filepath.Join(dir, "siegerc")
	if err := os.WriteFile(rc, []byte(siegeConfig(concurrency)), 0o600); err != nil {
		return loadResult{}, err
	}
	seconds := int(math.Ceil(duration.Seconds()))
	log := filepath.Join(dir, "siege.out")
	// HOME: siege writes a configuration template to ~/.siege on its first
	// run; keep it in the arm's directory.
	p, err := startProcess("siege", log, []string{"HOME=" + dir},
		"--rc="+rc, "-c", strconv.Itoa(concurrency), "-t", strconv.Itoa(seconds)+"S", "-b", url)
	if err != nil {
		return loadResult{}, err
	}
	defer p.stop()
	select {
	case <-p.done:
	case <-ctx.Done():
		return loadResult{}, ctx.Err()
	case <-time.After(time.Duration(seconds)*time.Second + 30*time.Second):
		return loadResult{}, fmt.Errorf("siege still running 30 s after its -t %dS", seconds)
	}
	out, err := os.ReadFile(log)
	if err != nil {
		return loadResult{}, err
	}
	s, err := parseSiege(string(out))
	if err != nil {
		return loadResult{}, err
	}
	return loadResult{
		requests:  int64(s.Transactions + s.Failed),
		successes: int64(s.Transactions),
		errors:    int64(s.Failed),
		elapsed:   time.Duration(s.ElapsedTime * float64(time.Second)),
	}, nil
}
