//! The graph: ops as nodes of a petgraph `StableDiGraph`, operands as edges
//! from the producer to the consumer, labelled with their role.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::op::{Op, Operand, Role};
use super::tensor_type::TensorType;

/// A node's id; stable across removals of other nodes.
pub type NodeId = NodeIndex<u32>;

/// One op with its result type.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub op: Op,
    pub ty: TensorType,
    /// A readable label (`blk.3.attn_q`, `x.5`); not necessarily unique.
    pub name: String,
    /// The decoder block the node belongs to, if any.
    pub layer: Option<u32>,
}

impl Node {
    pub fn new(op: Op, ty: TensorType, name: impl Into<String>) -> Self {
        Node {
            op,
            ty,
            name: name.into(),
            layer: None,
        }
    }

    pub fn in_layer(mut self, layer: u32) -> Self {
        self.layer = Some(layer);
        self
    }
}

/// A dataflow graph of ops with named outputs.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    g: StableDiGraph<Node, Operand, u32>,
    outputs: Vec<(String, NodeId)>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `node` reading `operands`; repeated roles get indices 0, 1, ...
    /// in the order given.
    pub fn add(&mut self, node: Node, operands: &[(Role, NodeId)]) -> NodeId {
        let id = self.g.add_node(node);
        for &(role, src) in operands {
            self.connect(src, id, role);
        }
        id
    }

    /// Adds operand `src` of role `role` to `dst`, after any it already has
    /// of that role.
    pub fn connect(&mut self, src: NodeId, dst: NodeId, role: Role) {
        let index = self.operand_list(dst, role).len() as u8;
        self.g.add_edge(src, dst, Operand { role, index });
    }

    /// Adds an operand with an explicit index (used by the text parser).
    pub fn connect_at(&mut self, src: NodeId, dst: NodeId, operand: Operand) {
        self.g.add_edge(src, dst, operand);
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// Node ids in index order (not necessarily a valid schedule).
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    /// All operands of `id`, sorted by role and index.
    pub fn operands(&self, id: NodeId) -> Vec<(Operand, NodeId)> {
        let mut v: Vec<_> = self
            .g
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        v.sort();
        v
    }

    /// The first operand of role `role`.
    pub fn operand(&self, id: NodeId, role: Role) -> Option<NodeId> {
        self.operand_list(id, role).first().copied()
    }

    /// Every operand of role `role`, by index.
    pub fn operand_list(&self, id: NodeId, role: Role) -> Vec<NodeId> {
        self.operands(id)
            .into_iter()
            .filter(|(o, _)| o.role == role)
            .map(|(_, n)| n)
            .collect()
    }

    /// Every (consumer, operand) reading `id`.
    pub fn users(&self, id: NodeId) -> Vec<(NodeId, Operand)> {
        let mut v: Vec<_> = self
            .g
            .edges_directed(id, Direction::Outgoing)
            .map(|e| (e.target(), *e.weight()))
            .collect();
        v.sort();
        v
    }

    /// Points every reader of `old` (and any output naming it) at `new`.
    pub fn replace_all_uses(&mut self, old: NodeId, new: NodeId) {
        for (user, operand) in self.users(old) {
            if let Some(e) = self.g.find_edge(old, user) {
                self.g.remove_edge(e);
            }
            self.g.add_edge(new, user, operand);
        }
        for (_, o) in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Removes the operand edge `operand` of `dst`.
    pub fn disconnect(&mut self, dst: NodeId, operand: Operand) {
        let edge = self
            .g
            .edges_directed(dst, Direction::Incoming)
            .find(|e| *e.weight() == operand)
            .map(|e| e.id());
        if let Some(e) = edge {
            self.g.remove_edge(e);
        }
    }

    /// Removes a node and its edges.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id)
    }

    pub fn set_output(&mut self, name: impl Into<String>, id: NodeId) {
        let name = name.into();
        self.outputs.retain(|(n, _)| *n != name);
        self.outputs.push((name, id));
    }

    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// A schedule: every node after its operands, ties broken by node index
    /// so that the order is deterministic. `Err(node)` names a node on a cycle.
    pub fn topo_order(&self) -> Result<Vec<NodeId>, NodeId> {
        use std::collections::{BTreeSet, HashMap};
        let mut pending: HashMap<NodeId, usize> = self
            .g
            .node_indices()
            .map(|n| (n, self.g.edges_directed(n, Direction::Incoming).count()))
            .collect();
        let mut ready: BTreeSet<NodeId> = pending
            .iter()
            .filter(|(_, &c)| c == 0)
            .map(|(&n, _)| n)
            .collect();
        let mut order = Vec::with_capacity(pending.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.g.edges_directed(n, Direction::Outgoing) {
                let c = pending.get_mut(&e.target()).expect("edge target is a node");
                *c -= 1;
                if *c == 0 {
                    ready.insert(e.target());
                }
            }
        }
        if order.len() == pending.len() {
            Ok(order)
        } else {
            let stuck = pending
                .iter()
                .filter(|(_, &c)| c > 0)
                .map(|(&n, _)| n)
                .min()
                .expect("some node is stuck");
            Err(stuck)
        }
    }

    /// The underlying petgraph graph, for passes that need more.
    pub fn petgraph(&self) -> &StableDiGraph<Node, Operand, u32> {
        &self.g
    }
}
