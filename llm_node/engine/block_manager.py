"""Paged KV cache bookkeeping: fixed-size blocks, reference counts, prefix-cache reuse of full blocks.

A full block is keyed by a hash chained over all tokens up to its end, so a hit means the whole prefix
matches. Freed blocks keep their hash until they are handed out again (least recently freed first), so a
finished request's prompt still serves later requests with the same prefix.

Every operation costs O(blocks it touches): the free list is ordered and removes a prefix-cache hit in
O(1), and a sequence's hashed blocks are always a prefix of its block table, so `commit` starts after them.
"""
from __future__ import annotations

from collections import OrderedDict

from llm_node.engine.sequence import Sequence


class Block:
    __slots__ = ("block_id", "ref_count", "hash", "token_ids")

    def __init__(self, block_id: int):
        self.block_id, self.ref_count, self.hash, self.token_ids = block_id, 0, None, ()


class BlockManager:
    """Owns `num_blocks` blocks of `block_size` token slots; slot = block_id * block_size + offset."""

    def __init__(self, num_blocks: int, block_size: int, enable_prefix_caching: bool = True):
        self.block_size = block_size
        self.blocks = [Block(i) for i in range(num_blocks)]
        self.free_ids: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))  # in freeing order
        self.hash_to_id: dict[int, int] = {}
        self.prefix_caching = enable_prefix_caching

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_ids)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def allocate(self, seq: Sequence) -> bool:
        """Blocks for all tokens of a waiting sequence, reusing cached full blocks of its prefix.
        The last token is always recomputed (its logits are needed). False, and nothing held, if short."""
        assert not seq.block_table
        bs, h = self.block_size, None
        if self.prefix_caching:
            for i in range((len(seq) - 1) // bs):
                tokens = tuple(seq.token_ids[i * bs:(i + 1) * bs])
                h = hash((h, tokens))
                block_id = self.hash_to_id.get(h)
                if block_id is None or self.blocks[block_id].token_ids != tokens:
                    break
                block = self.blocks[block_id]
                if block.ref_count == 0:
                    del self.free_ids[block_id]
                block.ref_count += 1
                seq.block_table.append(block_id)
        seq.num_cached_tokens = seq.num_computed_tokens = len(seq.block_table) * bs
        if not self.grow(seq, len(seq)):
            self.free(seq)
            return False
        return True

    def grow(self, seq: Sequence, num_tokens: int) -> bool:
        """Make `seq.block_table` cover `num_tokens` tokens; False (nothing allocated) if blocks are short."""
        need = self.blocks_for(num_tokens) - len(seq.block_table)
        if need > len(self.free_ids):
            return False
        for _ in range(need):
            block = self.blocks[self.free_ids.popitem(last=False)[0]]
            if block.hash is not None and self.hash_to_id.get(block.hash) == block.block_id:
                del self.hash_to_id[block.hash]
            block.hash, block.token_ids, block.ref_count = None, (), 1
            seq.block_table.append(block.block_id)
        return True

    def commit(self, seq: Sequence) -> None:
        """Register the blocks that became full of computed tokens in the prefix cache."""
        if not self.prefix_caching:
            return
        bs, table = self.block_size, seq.block_table
        full = start = seq.num_computed_tokens // bs
        while start and self.blocks[table[start - 1]].hash is None:  # hashed blocks are a prefix of the table
            start -= 1
        for i in range(start, full):
            block = self.blocks[table[i]]
            prev = self.blocks[table[i - 1]].hash if i else None
            block.token_ids = tuple(seq.token_ids[i * bs:(i + 1) * bs])
            block.hash = hash((prev, block.token_ids))
            self.hash_to_id.setdefault(block.hash, block.block_id)

    def free(self, seq: Sequence) -> None:
        """Drop the sequence's references; blocks nobody uses go back to the free list (keeping their hash)."""
        for block_id in reversed(seq.block_table):
            block = self.blocks[block_id]
            block.ref_count -= 1
            assert block.ref_count >= 0
            if block.ref_count == 0:
                self.free_ids[block_id] = None
        seq.block_table = []
        seq.num_computed_tokens = 0
