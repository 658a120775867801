%% Twin of bench/spawn.basm: spawn N processes that wait in receive, then stop them.
%% Also reports the growth of erlang:memory(processes) per process while all are alive.
%% erlc spawn.erl && erl +S 1 +P 2000000 -noshell -run spawn main 1000000
-module(spawn).
-export([main/1]).

main([NArg]) ->
    N = list_to_integer(NArg),
    erlang:garbage_collect(),
    Mem0 = erlang:memory(processes),
    T0 = erlang:monotonic_time(microsecond),
    Pids = spawn_all(N, []),
    T1 = erlang:monotonic_time(microsecond),
    Mem1 = erlang:memory(processes),
    lists:foreach(fun(P) -> P ! stop end, Pids),
    T2 = erlang:monotonic_time(microsecond),
    Us = T1 - T0,
    io:format("spawn n=~w us=~w ms=~w ns_per_spawn=~w stop_ms=~w bytes_per_proc=~w~n",
              [N, Us, Us div 1000, round(Us * 1000 / max(N, 1)), (T2 - T1) div 1000,
               round((Mem1 - Mem0) / max(N, 1))]),
    halt().

spawn_all(0, Acc) -> Acc;
spawn_all(K, Acc) -> spawn_all(K - 1, [spawn(fun waiter/0) | Acc]).

waiter() ->
    receive stop -> ok end.
