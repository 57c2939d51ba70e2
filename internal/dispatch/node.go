package dispatch

import (
	"fmt"
	"strings"
)

// Level is the level of the grid hierarchy a node sits at.
type Level int

// The levels of the grid hierarchy, from the top.
const (
	LevelFleet Level = iota
	LevelRegion
	LevelSubstation
	LevelSite
)

// Node is a node of the grid hierarchy a dispatch targets.
type Node struct {
	Level Level
	ID    string // "" for the fleet
}

// String is the node's ID as written: "fleet", "region/ID",
// "substation/ID" or "site/ID".
func (n Node) String() string {
	switch n.Level {
	case LevelFleet:
		return "fleet"
	case LevelRegion:
		return "region/" + n.ID
	case LevelSubstation:
		return "substation/" + n.ID
	default:
		return "site/" + n.ID
	}
}

// ParseNode parses a node ID: "fleet", "region/ID", "substation/ID" or
// "site/ID", with ID 1..64 bytes.
func ParseNode(s string) (Node, error) {
	if s == "fleet" {
		return Node{Level: LevelFleet}, nil
	}
	kind, id, ok := strings.Cut(s, "/")
	if !ok {
		return Node{}, fmt.Errorf("node %q: want fleet, region/ID, substation/ID or site/ID", s)
	}
	if id == "" || len(id) > 64 {
		return Node{}, fmt.Errorf("node %q: ID must be 1..64 bytes", s)
	}
	switch kind {
	case "region":
		return Node{Level: LevelRegion, ID: id}, nil
	case "substation":
		return Node{Level: LevelSubstation, ID: id}, nil
	case "site":
		return Node{Level: LevelSite, ID: id}, nil
	}
	return Node{}, fmt.Errorf("node %q: want fleet, region/ID, substation/ID or site/ID", s)
}

// Contains reports whether a site (with its substation and region) lies in
// the node.
func (n Node) Contains(region, substation, site string) bool {
	switch n.Level {
	case LevelFleet:
		return true
	case LevelRegion:
		return region == n.ID
	case LevelSubstation:
		return substation == n.ID
	default:
		return site == n.ID
	}
}
