"""Connected components of the identifier graph with networkx (the identity benchmark's baseline).

Reads the file `loadgen identity-fill --edges` wrote (one line per event: its identifiers,
space-separated) and prints one JSON line: components and the seconds networkx took to build the
graph and find them. Loading the file is not timed.
"""
import json
import sys
import time

import networkx as nx


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as edges_file:
        events = [line.split() for line in edges_file]
    started = time.perf_counter()
    graph = nx.Graph()
    for ids in events:
        if not ids:
            continue
        graph.add_node(ids[0])
        for other in ids[1:]:
            graph.add_edge(ids[0], other)
    components = nx.number_connected_components(graph)
    seconds = time.perf_counter() - started
    print(json.dumps({"components": components, "seconds": seconds, "events": len(events),
                      "networkx": nx.__version__}))


if __name__ == "__main__":
    main()
