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
// Times are written in UTC. JSON has no NaN or infinities: a Value or Series value that is not finite is written
// as the string "NaN", "+Inf" or "-Inf", as Prometheus's HTTP API writes them, so that a query answering +Inf
// keeps its value in the record. Everything round-trips exactly through Read.
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

// Read reads evidence written by WriteJSON (values as numbers, or as the strings "NaN", "+Inf" and "-Inf").
// Times are returned in UTC.
func Read(r io.Reader) (*Evidence, error) {
	var j evidenceJSON
	if err := json.NewDecoder(r).Decode(&j); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("evidence: decoding: empty input")
		}
		return nil, fmt.Errorf("evidence: decoding: %w", err)
	}
	e := Evidence(j.evidenceFields)
	e.StartedAt = utc(e.StartedAt)
	e.FinishedAt = utc(e.FinishedAt)
	e.Measurements = nil
	if j.Measurements != nil {
		e.Measurements = make([]Measurement, len(j.Measurements))
		for i, m := range j.Measurements {
			e.Measurements[i] = m.measurement()
			e.Measurements[i].Time = utc(m.Time)
		}
	}
	return &e, nil
}

// evidenceJSON is Evidence as written: its Measurements (the last field, so the order stays) are
// measurementJSON.
type evidenceJSON struct {
	evidenceFields
	Measurements []measurementJSON `json:"measurements"`
}

// evidenceFields are Evidence's fields; its Measurements are hidden by evidenceJSON's.
type evidenceFields Evidence

// measurementJSON is Measurement with its numbers as number, field for field, in the same order.
type measurementJSON struct {
	Time      time.Time         `json:"time"`
	Check     string            `json:"check"`
	Status    string            `json:"status"`
	Value     number            `json:"value"`
	Text      string            `json:"text"`
	Threshold string            `json:"threshold"`
	Query     string            `json:"query,omitempty"`
	Series    map[string]number `json:"series,omitempty"`
	Detail    string            `json:"detail,omitempty"`
	// Sequential's numbers are finite (the check keeps them so).
	Sequential *Sequential `json:"sequential,omitempty"`
}

func toJSON(m Measurement) measurementJSON {
	j := measurementJSON{Time: utc(m.Time), Check: m.Check, Status: m.Status, Value: number(m.Value), Text: m.Text,
		Threshold: m.Threshold, Query: m.Query, Detail: m.Detail, Sequential: m.Sequential}
	if m.Series != nil {
		j.Series = make(map[string]number, len(m.Series))
		for k, v := range m.Series {
			j.Series[k] = number(v)
		}
	}
	return j
}

func (j measurementJSON) measurement() Measurement {
	m := Measurement{Time: j.Time, Check: j.Check, Status: j.Status, Value: float64(j.Value), Text: j.Text,
		Threshold: j.Threshold, Query: j.Query, Detail: j.Detail, Sequential: j.Sequential}
	if j.Series != nil {
		m.Series = make(map[string]float64, len(j.Series))
		for k, v := range j.Series {
			m.Series[k] = float64(v)
		}
	}
	return m
}

// number is a float64 that JSON can hold whatever its value: NaN and ±Inf are the strings "NaN", "+Inf", "-Inf".
type number float64

func (n number) MarshalJSON() ([]byte, error) {
	switch v := float64(n); {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	default:
		return json.Marshal(v)
	}
}

func (n *number) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '"' {
		var v float64
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*n = number(v)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	switch s {
	case "NaN":
		*n = number(math.NaN())
	case "+Inf", "Inf":
		*n = number(math.Inf(1))
	case "-Inf":
		*n = number(math.Inf(-1))
	default:
		return fmt.Errorf("%q is not a number", s)
	}
	return nil
}

// forJSON returns what WriteJSON encodes: a copy of e with times in UTC and numbers that JSON holds. e itself is
// not changed.
func (e *Evidence) forJSON() *evidenceJSON {
	c := evidenceJSON{evidenceFields: evidenceFields(*e)}
	c.StartedAt = utc(e.StartedAt)
	c.FinishedAt = utc(e.FinishedAt)
	c.evidenceFields.Measurements = nil
	if e.Measurements != nil {
		c.Measurements = make([]measurementJSON, len(e.Measurements))
		for i, m := range e.Measurements {
			c.Measurements[i] = toJSON(m)
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
