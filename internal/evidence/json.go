package evidence

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// WriteJSON writes e as indented JSON, fields in struct order, followed by a newline.
//
// Times are written in UTC. JSON has no NaN or infinities, so a non-finite Value is written as 0 and a
// non-finite Series value is left out (Text still says what was measured); everything else round-trips
// exactly through Read.
func (e *Evidence) WriteJSON(w io.Writer) error {
	if e == nil {
		return errors.New("evidence: nil evidence")
	}
	// Encode into memory first, so that a value JSON cannot hold leaves w untouched.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // thresholds read "< 0.01", not "\u003c 0.01"
	if err := enc.Encode(e.forJSON()); err != nil {
		return fmt.Errorf("evidence: encoding: %w", err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("evidence: writing: %w", err)
	}
	return nil
}

// Read reads evidence written by WriteJSON. Times are returned in UTC.
func Read(r io.Reader) (*Evidence, error) {
	var e Evidence
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("evidence: decoding: empty input")
		}
		return nil, fmt.Errorf("evidence: decoding: %w", err)
	}
	e.StartedAt = utc(e.StartedAt)
	e.FinishedAt = utc(e.FinishedAt)
	for i := range e.Measurements {
		e.Measurements[i].Time = utc(e.Measurements[i].Time)
	}
	return &e, nil
}

// forJSON returns a shallow copy of e that encoding/json accepts: times in UTC, no NaN or infinities.
// e itself is not changed.
func (e *Evidence) forJSON() *Evidence {
	c := *e
	c.StartedAt = utc(e.StartedAt)
	c.FinishedAt = utc(e.FinishedAt)
	if e.Measurements != nil {
		c.Measurements = make([]Measurement, len(e.Measurements))
		for i, m := range e.Measurements {
			m.Time = utc(m.Time)
			if !finite(m.Value) {
				m.Value = 0
			}
			if hasNonFinite(m.Series) {
				s := make(map[string]float64, len(m.Series))
				for k, v := range m.Series {
					if finite(v) {
						s[k] = v
					}
				}
				m.Series = s
			}
			c.Measurements[i] = m
		}
	}
	return &c
}

// utc returns t in UTC without a monotonic reading; the zero time stays the zero time.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func hasNonFinite(s map[string]float64) bool {
	for _, v := range s {
		if !finite(v) {
			return true
		}
	}
	return false
}
