package tui

import (
	"math"
	"slices"
	"strings"

	"charm.land/lipgloss/v2"

	"github.com/vppctl/vpp/internal/fleet"
	"github.com/vppctl/vpp/internal/history"
)

// pipelineView is the end-to-end accounting: what ingest received,
// rejected (by reason), published and acked; what the aggregators
// consumed, applied, dropped as duplicates and found missing; the lag; and
// the balances that show at once whether anything is lost and where.
type pipelineView struct {
	c             *common
	width, height int
}

func newPipelineView(c *common) *pipelineView { return &pipelineView{c: c} }

// SetSize implements screen for pipelineScreen.
func (p *pipelineView) SetSize(w, h int) { p.width, p.height = w, h }

// counterRow is one line of the accounting table.
type counterRow struct {
	stage, name string
	total       string
	metric      history.Metric // -1: no series
	style       *lipgloss.Style
}

// View implements screen for pipelineScreen.
func (p *pipelineView) View() string {
	st := &p.c.styles
	pl := &p.c.snap.Pipeline
	var b strings.Builder

	upd := "never"
	if !pl.UpdatedAt.IsZero() {
		upd = fmtAge(p.c.now.Sub(pl.UpdatedAt)) + " ago"
	}
	b.WriteString(truncate(st.Section.Render("pipeline accounting")+st.Dim.Render(" · updated "+upd+" · "+
		plural(len(pl.Instances), "ingest instance")+" · "+plural(len(pl.Partitions), "partition")+" · "+
		plural(int(pl.Connections), "connection")), p.width))

	var warnIf = func(bad bool) *lipgloss.Style {
		if bad {
			return &st.Warn
		}
		return nil
	}
	rows := []counterRow{
		{"ingest", "received", fmtCount(pl.Received), history.ReceivedPerSec, nil},
		{"", "rejected", fmtCount(pl.RejectedTotal), history.RejectedPerSec, warnIf(pl.RejectedTotal > 0)},
	}
	reasons := make([]string, 0, len(pl.Rejected))
	for r := range pl.Rejected {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		rows = append(rows, counterRow{"", "  · " + r, fmtCount(pl.Rejected[r]), -1, nil})
	}
	rows = append(rows,
		counterRow{"", "published", fmtCount(pl.Published), history.PublishedPerSec, nil},
		counterRow{"", "acked", fmtCount(pl.Acked), history.AckedPerSec, nil},
		counterRow{"", "buffered", fmtCount(pl.Buffered) + "/" + fmtCount(pl.BufferCapacity), -1, warnIf(pl.BufferCapacity > 0 && pl.Buffered*10 >= pl.BufferCapacity*9)},
		counterRow{"kafka", "lag", fmtCount(pl.Lag), history.Lag, warnIf(pl.Lag > lagWarnRecs)},
		counterRow{"aggregate", "consumed", fmtCount(pl.Consumed), history.ConsumedPerSec, nil},
		counterRow{"", "applied", fmtCount(pl.Applied), history.AppliedPerSec, nil},
		counterRow{"", "duplicates", fmtCount(pl.Duplicates), history.DuplicatesPerSec, nil},
		counterRow{"", "sequence gaps", fmtCount(pl.Gaps), history.GapsPerSec, warnIf(pl.Gaps > 0)},
		counterRow{"", "undecodable", fmtCount(pl.Undecodable), -1, warnIf(pl.Undecodable > 0)},
	)

	const stageW, nameW, totalW, rateW = 10, 16, 15, 10
	sw := max(0, p.width-stageW-nameW-totalW-rateW-4)
	b.WriteByte('\n')
	b.WriteString(st.TableHeader.Render(fit(fit("STAGE", stageW, false)+" "+fit("COUNTER", nameW, false)+" "+fit("TOTAL", totalW, true)+" "+fit("RATE", rateW, true)+" "+"TREND", p.width, false)))
	checks := p.checks()
	// Keep room for the balance checks below the table.
	avail := p.height - 2 - len(checks) - 1
	for i, r := range rows {
		if i >= avail {
			break
		}
		rate, trend := "", ""
		if r.metric >= 0 {
			vals := p.c.seriesOf(fleet.KindFleet, fleet.FleetID, r.metric, sw)
			if v := lastFinite(vals); !math.IsNaN(v) {
				rate = fmtRate(v)
				if r.metric == history.Lag {
					rate = fmtCount(int64(v))
				}
			} else {
				rate = "—"
			}
			trend = spark(vals, sw, math.Max(1, absMax(vals)), false, &st.RateChart, nil)
		}
		b.WriteByte('\n')
		b.WriteString(st.Label.Render(fit(r.stage, stageW, false)) + " " + fit(r.name, nameW, false) + " " +
			render(r.style, fit(r.total, totalW, true)) + " " + fit(rate, rateW, true) + " " + trend)
	}
	b.WriteString("\n" + st.Section.Render("balances"))
	for _, c := range checks {
		b.WriteString("\n" + c)
	}
	return b.String()
}

// checks are the balances of the pipeline: ✓ when they hold, ! with the
// difference when they do not (in flight while the fleet is busy; lost
// when it stays once the fleet is quiet), ✗ only for a balance that must
// hold exactly. Ingest counters arrive once a second and partition counters
// every flush, so the Kafka balance allows for the records of the seconds
// between them: a difference within that slack is in flight, not lost.
func (p *pipelineView) checks() []string {
	st := &p.c.styles
	pl := &p.c.snap.Pipeline
	line := func(ok bool, warn bool, text string) string {
		switch {
		case ok:
			return "  " + st.Live.Render("✓") + " " + text
		case warn:
			return "  " + st.Warn.Render("!") + " " + st.Warn.Render(text)
		}
		return "  " + st.Crit.Render("✗") + " " + st.Crit.Render(text)
	}
	un := pl.Unaccounted()
	ingestOK := un >= 0 && un <= pl.Buffered
	inFlight := "in flight (buffered " + fmtCount(pl.Buffered) + ")"
	if !ingestOK {
		inFlight = "(buffered " + fmtCount(pl.Buffered) + "): the rest in flight or lost"
	}
	agg := int64(pl.Consumed) - int64(pl.Applied) - int64(pl.Duplicates) - int64(pl.Undecodable)
	kafka := int64(pl.Published) - int64(pl.Consumed) - pl.Lag
	rate := p.c.ingestRate()
	if math.IsNaN(rate) || rate < 0 {
		rate = 0
	}
	slack := int64(2*rate) + 100
	kafkaText := "kafka: published − consumed − lag = " + fmtCount(kafka)
	switch {
	case kafka < -slack:
		kafkaText += " (consumed more than the ingest counters show: an ingest instance stopped before its last stats, or replayed a spool)"
	case kafka > slack:
		kafkaText += " (published, not yet consumed)"
	case kafka != 0:
		kafkaText += " (counters a second apart)"
	}
	return []string{
		line(ingestOK, un > 0, "ingest: received − published − rejected = "+fmtCount(un)+unless(un == 0, " "+inFlight)),
		line(kafka >= -slack && kafka <= slack, true, kafkaText),
		line(agg == 0, false, "aggregate: consumed − applied − duplicates − undecodable = "+fmtCount(agg)),
	}
}

func unless(cond bool, s string) string {
	if cond {
		return ""
	}
	return s
}

// plural is "1 partition", "3 partitions".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmtCount(n) + " " + what + "s"
}
