package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/vppctl/vpp/internal/fleet"
)

// screenPipeline is the pipeline accounting.
const screenPipeline screenID = "pipeline"

// pipelineScreen is the pipeline accounting (pipelineView, which draws it)
// as a screen: its keys and crumbs.
type pipelineScreen struct {
	*pipelineView
	short []key.Binding
}

func newPipelineScreen(c *common) *pipelineScreen {
	return &pipelineScreen{pipelineView: newPipelineView(c), short: c.hints([]key.Binding{c.keys.Back}, screenAlarms, screenFleet)}
}

// Update implements screen: Back closes the accounting.
func (p *pipelineScreen) Update(msg tea.Msg) (screen, tea.Cmd) {
	if kp, ok := msg.(tea.KeyPressMsg); ok && key.Matches(kp, p.c.keys.Back) {
		return nil, nil
	}
	return p, nil
}

// ShortHelp implements help.KeyMap: the accounting's hint bar.
func (p *pipelineScreen) ShortHelp() []key.Binding { return p.short }

// FullHelp implements help.KeyMap.
func (p *pipelineScreen) FullHelp() [][]key.Binding { return [][]key.Binding{{p.c.keys.Back}} }

// Crumbs implements screen.
func (p *pipelineScreen) Crumbs() []string { return []string{fleet.FleetID, "pipeline"} }
