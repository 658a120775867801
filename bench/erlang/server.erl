%% Calls through gen_server: one counter server, C clients making N synchronous calls each.
-module(server).
-behaviour(gen_server).
-export([main/1, init/1, handle_call/3, handle_cast/2]).

main([CS, NS]) ->
    C = list_to_integer(CS), N = list_to_integer(NS),
    {ok, Server} = gen_server:start(?MODULE, 0, []),
    Parent = self(),
    T0 = erlang:monotonic_time(microsecond),
    [spawn(fun() -> client(Server, N), Parent ! done end) || _ <- lists:seq(1, C)],
    [receive done -> ok end || _ <- lists:seq(1, C)],
    T1 = erlang:monotonic_time(microsecond),
    Calls = C * N,
    io:format("server clients=~p calls=~p us=~p calls_per_s=~.1f~n",
              [C, Calls, T1 - T0, Calls / ((T1 - T0) / 1.0e6)]),
    halt().

client(_, 0) -> ok;
client(Server, K) -> gen_server:call(Server, {add, 1}), client(Server, K - 1).

init(Count) -> {ok, Count}.
handle_call({add, D}, _From, Count) -> {reply, Count + D, Count + D}.
handle_cast(_, Count) -> {noreply, Count}.
