package consultest

import (
	"cmp"
	"maps"
)

// SetNodeMeta sets the meta of node ("" means the agent's node), as
// re-registering the node with new node_meta does (a catalog write, PUT
// /v1/catalog/register with NodeMeta): every service with an instance on
// the node gets a new index, so blocked health queries for it return,
// carrying the new Node.Meta. Consul's state store does the same when it
// writes a node ("Update the node's service indexes as the node
// information is included in health queries", updateAllServiceIndexesOfNode).
// A nil meta removes it.
func (s *Server) SetNodeMeta(node string, meta map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node = cmp.Or(node, s.opts.Node)
	s.nodeMeta[node] = maps.Clone(meta)
	touched := map[string]bool{}
	for _, in := range s.instances {
		if cmp.Or(in.Node, s.opts.Node) == node && !touched[in.Service] {
			touched[in.Service] = true
			s.writeLocked(in.Service)
		}
	}
	s.notifyLocked()
}
