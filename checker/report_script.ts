/**
 * The report page's script: decodes the embedded data (see report_data.ts),
 * draws the overview of the whole run and each partition's time line on
 * canvases, only the visible time window and only partitions on screen, and
 * handles zoom, pan, the annotation list, the error jump and the tooltips.
 * It writes text from the data with `textContent` or onto a canvas, never as
 * HTML.
 *
 * @module
 */

/** The page's script (plain ES5-style JavaScript, inline). */
export const REPORT_SCRIPT = String.raw`
(function(){
"use strict";
var D=JSON.parse(document.getElementById("data").textContent);
var P=D.p,U=D.u,T0=D.t0,dpr=window.devicePixelRatio||1;
var ROW=16,AXIS=16,LEFT=72;
var lo=Infinity,hi=-Infinity,durs=[];
P.forEach(function(p){
  p.a=p.a||[];p.s=p.s||[];
  var n=p.c.length,call=new Float64Array(n),end=new Float64Array(n),t=0;
  for(var i=0;i<n;i++){t+=p.t[i];call[i]=t;if(p.r[i]>=0){end[i]=t+p.r[i];if(durs.length<5000)durs.push(p.r[i]);}else end[i]=-1;
    if(t<lo)lo=t;if(end[i]>hi)hi=end[i];if(t>hi)hi=t;}
  p.call=call;p.end=end;p.len=n;p.chosen=0;
  p.seqs=p.s.map(function(s){var o=[],x=0;for(var k=0;k<s.o.length;k++){x+=s.o[k];o.push(x);}
    var st=[],prev;for(var j=0;j<s.st.length;j++){var v=s.st[j];if(v===0)v=prev;st[s.f+j]=v;prev=v;}
    return {order:o,states:st,f:s.f,has:s.st.length>0};});
});
if(!(lo<=hi)){lo=0;hi=1;}
durs.sort(function(a,b){return a-b;});
var med=durs.length?Math.max(durs[durs.length>>1],1):1;
var OPEN=Math.max(med*2,(hi-lo)/2000,1);
if(hi-lo<OPEN)hi=lo+OPEN;
hi+=(hi-lo)*0.01+OPEN;
var v0=lo,v1=hi,hl=null;
function tstr(x){var v=T0+x/U;return String(Math.round(v*1000)/1000);}
function dstr(x){return String(Math.round(x/U*1000)/1000);}
function desc(p,i){var d=p.d[i];if(typeof d==="number")d=p.d[d];return p.hs[p.h[i]]+d;}
function openEnd(p,i){return p.end[i]<0?p.call[i]+OPEN:p.end[i];}
var notes=[];
P.forEach(function(p,pi){p.a.forEach(function(a){notes.push({p:pi,i:a[0],text:a[1],t:p.call[a[0]]});});});
notes.sort(function(a,b){return a.t-b.t;});
var errors=[];
P.forEach(function(p,pi){if(p.x!==undefined)errors.push({p:pi,i:p.x});(p.w||[]).forEach(function(i){if(i!==p.x)errors.push({p:pi,i:i});});});

// Rows: one per client (split where its operations overlap) for up to 40
// clients; beyond that operations are packed into lanes.
function layout(p){
  if(p.rows)return;
  var idx=[];for(var i=0;i<p.len;i++)idx.push(i);
  idx.sort(function(a,b){return p.call[a]-p.call[b]||a-b;});
  var names={},count=0;p.c.forEach(function(c){if(!(c in names)){names[c]=1;count++;}});
  var rows=[],ends=[],label=[],byClient={};
  idx.forEach(function(i){
    var key=count<=40?p.c[i]:0,list=byClient[key]||(byClient[key]=[]),r=-1;
    for(var k=0;k<list.length;k++){if(ends[list[k]]<=p.call[i]){r=list[k];break;}}
    if(r<0){r=rows.length;rows.push([]);ends.push(-Infinity);
      label.push(count<=40?D.cl[p.pc[p.c[i]]]+(list.length?" \u00b7"+(list.length+1):""):"lane "+(r+1));list.push(r);}
    rows[r].push(i);ends[r]=openEnd(p,i);});
  p.rows=rows;p.label=label;p.perClient=count<=40;
}
function positions(p){
  var s=p.seqs[p.chosen],pos=new Int32Array(p.len);
  if(s)s.order.forEach(function(i,k){pos[i]=k+1;});
  p.pos=pos;
}

// --- overview --------------------------------------------------------------
var ov=document.getElementById("ov");
function fit(c,h){var w=c.clientWidth;c.width=Math.round(w*dpr);c.height=Math.round(h*dpr);
  var g=c.getContext("2d");g.setTransform(dpr,0,0,dpr,0,0);return {g:g,w:w,h:h};}
function drawOverview(){
  var f=fit(ov,120),g=f.g,w=f.w,h=f.h,B=Math.max(10,Math.min(Math.floor(w/3),Math.ceil(hi-lo)));
  var X=function(t){return (t-lo)/(hi-lo)*w;},bk=function(t){return Math.min(B-1,Math.max(0,Math.floor((t-lo)/(hi-lo)*B)));};
  var done=new Float64Array(B),open=new Float64Array(B),lat=new Float64Array(B),fly=new Float64Array(B+1);
  P.forEach(function(p){for(var i=0;i<p.len;i++){var a=bk(p.call[i]);
    if(p.end[i]<0){open[a]++;continue;}
    var b=bk(p.end[i]);done[b]++;if(p.end[i]-p.call[i]>lat[b])lat[b]=p.end[i]-p.call[i];fly[a]++;fly[b+1]--;}});
  var maxDone=1,maxLat=1,k,run=0;
  for(k=0;k<B;k++){if(done[k]>maxDone)maxDone=done[k];if(lat[k]>maxLat)maxLat=lat[k];}
  var top=14,bh=h-top-14;
  g.fillStyle="#fff";g.fillRect(0,0,w,h);
  // Nothing completed while operations were in flight, for at least ten
  // median latencies and two buckets: a failover gap (shorter lulls are noise).
  var from=-1;g.fillStyle="#f8d0d0";
  for(k=0;k<=B;k++){var empty=false;if(k<B){run+=fly[k];empty=done[k]===0&&run>0;}
    if(empty&&from<0)from=k;
    if(!empty&&from>=0){if(k-from>=2&&(k-from)*(hi-lo)/B>=10*med)g.fillRect(from*w/B,top,(k-from)*w/B,bh);from=-1;}}
  g.fillStyle="#9cc5a6";
  for(k=0;k<B;k++)if(done[k]>0){var y=bh*done[k]/maxDone;g.fillRect(k*w/B,top+bh-y,Math.max(1,w/B-0.5),y);}
  g.fillStyle="#d97706";
  for(k=0;k<B;k++)if(open[k]>0)g.fillRect(k*w/B,top+bh-3,Math.max(1,w/B-0.5),3);
  g.strokeStyle="#1a5fb4";g.lineWidth=1;g.beginPath();
  for(k=0;k<B;k++)if(done[k]>0){var ly=top+bh-bh*Math.log(1+lat[k])/Math.log(1+maxLat);
    if(k===0||done[k-1]===0)g.moveTo((k+0.5)*w/B,ly);else g.lineTo((k+0.5)*w/B,ly);}
  g.stroke();
  g.fillStyle="#b00020";errors.forEach(function(e){var x=X(P[e.p].call[e.i]);g.beginPath();g.moveTo(x-4,top+bh);g.lineTo(x+4,top+bh);g.lineTo(x,top+bh-7);g.fill();});
  g.font="11px system-ui,sans-serif";g.textBaseline="top";var lastLabel=-1e9;
  notes.forEach(function(n){var x=X(n.t);g.strokeStyle="#e09b00";g.setLineDash([3,2]);g.beginPath();g.moveTo(x+0.5,0);g.lineTo(x+0.5,h-12);g.stroke();g.setLineDash([]);
    if(x>lastLabel){var s="\u2691 "+n.text,tw=Math.min(g.measureText(s).width,260);g.fillStyle="#fff8e6";g.fillRect(x+2,0,tw+4,13);g.fillStyle="#8a5a00";g.fillText(s,x+4,1,260);lastLabel=x+tw+10;}});
  g.fillStyle="#555";g.textBaseline="bottom";
  for(k=0;k<=4;k++){var tx=lo+(hi-lo)*k/4;g.textAlign=k===0?"left":k===4?"right":"center";g.fillText(tstr(tx),X(tx),h);}
  g.textAlign="left";
  document.getElementById("ovstats").textContent="bars: operations completed per "+dstr((hi-lo)/B)+" (up to "+maxDone+"); line: their max latency, log scale (up to "+dstr(maxLat)+")";
  var a=X(v0),b=X(v1);g.fillStyle="rgba(0,0,0,0.08)";g.fillRect(0,top,a,bh);g.fillRect(b,top,w-b,bh);
  g.strokeStyle="#1a5fb4";g.lineWidth=2;g.strokeRect(a,top,Math.max(2,b-a),bh);
  if(brush){g.fillStyle="rgba(26,95,180,0.2)";g.fillRect(Math.min(brush.a,brush.b),top,Math.abs(brush.b-brush.a),bh);}
  document.getElementById("span").textContent="showing "+tstr(v0)+" \u2013 "+tstr(v1)+(v0<=lo&&v1>=hi?" (the whole run)":"");
}

// --- time lines ------------------------------------------------------------
var box=document.getElementById("timelines"),sections=[],visible={};
var MAX_SECTIONS=200;
function drawPart(pi){
  var p=P[pi],c=sections[pi]&&sections[pi].canvas;if(!c)return;
  layout(p);if(!p.pos)positions(p);
  var f=fit(c,AXIS+p.rows.length*ROW+2),g=f.g,w=f.w,span=v1-v0,sc=(w-LEFT)/span;
  var X=function(t){return LEFT+(t-v0)*sc;};
  g.fillStyle="#fff";g.fillRect(0,0,w,f.h);g.font="11px system-ui,sans-serif";g.textBaseline="middle";
  var wit={};(p.w||[]).forEach(function(i){wit[i]=1;});
  var ann={};p.a.forEach(function(a){ann[a[0]]=1;});
  p.rows.forEach(function(row,r){
    var y=AXIS+r*ROW;g.fillStyle=r%2?"#fbfbfb":"#fff";g.fillRect(LEFT,y,w-LEFT,ROW);
    // Operations of a row do not overlap: the first one ending in view is found by bisection.
    var a=0,b=row.length;while(a<b){var m=(a+b)>>1;if(openEnd(p,row[m])<v0)a=m+1;else b=m;}
    for(var k=a;k<row.length;k++){var i=row[k];if(p.call[i]>v1)break;
      var x0=X(p.call[i]),x1=X(openEnd(p,i)),bw=Math.max(2,x1-x0),open=p.end[i]<0,n=p.pos[i];
      g.fillStyle=i===p.x?"#fde2e4":open?"#fff3c4":n?"#cfe9d5":"#eee";g.fillRect(x0,y+2,bw,ROW-4);
      g.strokeStyle=i===p.x||wit[i]?"#b00020":open?"#8a6d00":n?"#5a8f66":"#bbb";g.lineWidth=i===p.x?2:1;
      if(open||wit[i])g.setLineDash([3,2]);g.strokeRect(x0+0.5,y+2.5,bw-1,ROW-5);g.setLineDash([]);
      if(ann[i]){g.fillStyle="#e09b00";g.fillRect(x0,y+ROW-5,bw,2);}
      if(hl&&hl.p===pi&&hl.i===i){g.strokeStyle="#1a5fb4";g.lineWidth=2;g.strokeRect(x0-1,y+1,bw+2,ROW-2);}
      if(bw>26){g.save();g.beginPath();g.rect(x0+2,y,bw-4,ROW);g.clip();g.fillStyle=i===p.x?"#b00020":n?"#0b4f1f":"#666";
        g.fillText((n?n+" ":"")+desc(p,i)+(open?" \u2192 ?":""),x0+3,y+ROW/2);g.restore();}}
  });
  g.fillStyle="#fff";g.fillRect(0,0,LEFT,f.h);g.fillStyle="#555";
  p.label.forEach(function(l,r){if(l)g.fillText(l.length>11?l.slice(0,10)+"\u2026":l,4,AXIS+r*ROW+ROW/2);});
  g.fillStyle="#888";g.textBaseline="top";g.fillText(p.perClient?"client":"lane",4,2);
  notes.forEach(function(n){if(n.t<v0||n.t>v1)return;var x=X(n.t);g.strokeStyle="#e09b00";g.setLineDash([3,2]);g.beginPath();g.moveTo(x+0.5,AXIS-2);g.lineTo(x+0.5,f.h);g.stroke();g.setLineDash([]);
    g.fillStyle="#8a5a00";g.fillText("\u2691 "+n.text,x+3,2,240);});
}
function showAll(){var n=Math.min(P.length,MAX_SECTIONS);for(var pi=0;pi<n;pi++)addSection(pi);
  if(P.length>n){var more=document.createElement("p");more.textContent="and "+(P.length-n)+" more partitions: open one from the list above";box.appendChild(more);}}
var seen=new IntersectionObserver(function(es){es.forEach(function(e){var pi=+e.target.dataset.p;
  if(e.isIntersecting){visible[pi]=1;drawPart(pi);}else delete visible[pi];});},{rootMargin:"200px"});
function el(tag,cls,text){var n=document.createElement(tag);if(cls)n.className=cls;if(text!==undefined)n.textContent=text;return n;}
function addSection(pi){
  var p=P[pi],s=el("section","part");s.id="p"+pi;s.dataset.p=pi;
  var h=el("h2",null,p.n+" ");h.appendChild(el("span",p.v,p.v==="ok"?"linearizable":p.v==="bad"?"not linearizable":"unknown"));
  h.appendChild(el("small",null," "+p.len+" operations"+(p.m?", decided by "+(p.m==="i"?"inference":"search"):"")));s.appendChild(h);
  var seq=p.seqs[0],longest=seq?seq.order.length:0;
  if(p.v==="ok")s.appendChild(el("p",null,"Linearization found: the numbers on the bars give its order."));
  else if(p.v==="unk")s.appendChild(el("p",null,"Unknown: "+D.uw+(longest?"; the furthest the search got: "+longest+" of "+p.len+" operations linearized (the numbers on the bars).":".")));
  else if(p.e){s.appendChild(el("p",null,"Not linearizable, decided by inference from the values read:"));var ul=el("ul","why");p.e.forEach(function(t){ul.appendChild(el("li",null,t));});s.appendChild(ul);}
  else{s.appendChild(el("p",null,"Not linearizable. "+(longest?"Longest partial linearization: "+longest+" of "+p.len+" operations"+(p.seqs.length>1?" ("+p.seqs.length+" shown; choose one below)":"")+". ":"")+
    (p.x!==undefined?desc(p,p.x)+" (client "+D.cl[p.pc[p.c[p.x]]]+") cannot be placed"+(seq&&seq.has?"; the state reached: "+seq.states[seq.states.length-1]:"")+".":"")));
    if(p.seqs.length>1){var pk=el("p","pick");p.seqs.forEach(function(q,k){var b=el("button",k?"":"on","#"+(k+1)+" ("+q.order.length+")");
      b.onclick=function(){p.chosen=k;positions(p);pk.querySelectorAll("button").forEach(function(x){x.className=x===b?"on":"";});steps(pi,true);drawPart(pi);};pk.appendChild(b);});s.appendChild(pk);}}
  var c=document.createElement("canvas");c.dataset.p=pi;s.canvas=c;s.appendChild(c);
  if(seq){var d=el("details");d.appendChild(el("summary",null,"Steps ("+longest+")"));var ol=el("ol","steps");d.appendChild(ol);s.appendChild(d);s.ol=ol;
    d.addEventListener("toggle",function(){steps(pi,false);});if(p.v==="bad")d.open=true;}
  box.appendChild(s);sections[pi]=s;s.canvas=c;seen.observe(c);hook(c,pi);
}
// The steps list shows a window of 300 (the last ones of a failing partition, where it fails).
function steps(pi,force){
  var s=sections[pi],p=P[pi],q=p.seqs[p.chosen];if(!s||!s.ol||(s.ol.dataset.done&&!force))return;
  var ol=s.ol;ol.textContent="";ol.dataset.done=1;var n=q.order.length,from=p.v==="bad"?Math.max(0,n-300):0,to=Math.min(n,from+300);
  function li(text,state,i,k){var e=el("li",i===undefined?"init":null,text);if(k!==undefined)e.value=k;
    if(state!==undefined){e.appendChild(el("span","st"," \u21d2 "+state));}if(i!==undefined)e.dataset.i=i;ol.appendChild(e);}
  if(from===0&&q.states[0]!==undefined)li("initial state",q.states[0]);
  else if(from>0)li("\u2026 "+from+" earlier steps");
  for(var k=from;k<to;k++)li(desc(p,q.order[k]),q.states[k+1],q.order[k],k+1);
  if(to<n)li("\u2026 "+(n-to)+" more steps");
  if(D.cut&&!q.has)li("(states are left out of a report this large; the failing partition keeps its last steps)");
}

// --- view: zoom, pan, jumps ------------------------------------------------
var queued=false;
function redraw(){if(queued)return;queued=true;requestAnimationFrame(function(){queued=false;drawOverview();for(var pi in visible)drawPart(+pi);});}
function setView(a,b){var min=Math.max(OPEN/4,(hi-lo)/1e6);if(b-a<min){var m=(a+b)/2;a=m-min/2;b=m+min/2;}
  if(b-a>hi-lo){a=lo;b=hi;}if(a<lo){b+=lo-a;a=lo;}if(b>hi){a-=b-hi;b=hi;}v0=Math.max(lo,a);v1=b;redraw();}
function zoom(f,at){if(at===undefined)at=(v0+v1)/2;setView(at-(at-v0)*f,at+(v1-at)*f);}
function focus(pi,i){var p=P[pi],t=p.call[i],span=Math.max(OPEN*40,(hi-lo)/200,(openEnd(p,i)-t)*3);hl={p:pi,i:i};setView(t-span/2,t+span/2);
  if(!sections[pi])addSection(pi);var s=sections[pi];s.scrollIntoView({block:"center"});s.classList.remove("flash");void s.offsetWidth;s.classList.add("flash");}
document.getElementById("whole").onclick=function(){setView(lo,hi);};
document.getElementById("zin").onclick=function(){zoom(0.5);};
document.getElementById("zout").onclick=function(){zoom(2);};
document.getElementById("left").onclick=function(){var s=(v1-v0)/2;setView(v0-s,v1-s);};
document.getElementById("right").onclick=function(){var s=(v1-v0)/2;setView(v0+s,v1+s);};
var brush=null;
function ovTime(e){var r=ov.getBoundingClientRect();return lo+(e.clientX-r.left)/r.width*(hi-lo);}
ov.addEventListener("mousedown",function(e){var r=ov.getBoundingClientRect();brush={a:e.clientX-r.left,b:e.clientX-r.left,t:ovTime(e)};e.preventDefault();});
window.addEventListener("mousemove",function(e){if(brush){var r=ov.getBoundingClientRect();brush.b=e.clientX-r.left;redraw();}});
window.addEventListener("mouseup",function(e){if(!brush)return;var b=brush;brush=null;
  if(Math.abs(b.b-b.a)<4){var t=ovTime(e),s=v1-v0;setView(t-s/2,t+s/2);}else{var t2=ovTime(e);setView(Math.min(b.t,t2),Math.max(b.t,t2));}});
ov.addEventListener("wheel",function(e){e.preventDefault();zoom(e.deltaY>0?1.25:0.8,ovTime(e));},{passive:false});
function hook(c,pi){
  var drag=null;
  function at(e){var r=c.getBoundingClientRect();return {x:e.clientX-r.left,y:e.clientY-r.top,w:r.width};}
  function tOf(q){return v0+(q.x-LEFT)/(q.w-LEFT)*(v1-v0);}
  c.addEventListener("wheel",function(e){var q=at(e);
    if(e.ctrlKey||e.metaKey||e.altKey){e.preventDefault();zoom(e.deltaY>0?1.25:0.8,tOf(q));}
    else if(Math.abs(e.deltaX)>Math.abs(e.deltaY)){e.preventDefault();var s=(v1-v0)*e.deltaX/q.w;setView(v0+s,v1+s);}},{passive:false});
  c.addEventListener("mousedown",function(e){drag={x:e.clientX,v0:v0,v1:v1,w:at(e).w};e.preventDefault();});
  window.addEventListener("mousemove",function(e){if(!drag)return;var s=(drag.x-e.clientX)/(drag.w-LEFT)*(drag.v1-drag.v0);setView(drag.v0+s,drag.v1+s);});
  window.addEventListener("mouseup",function(){drag=null;});
  c.addEventListener("mousemove",function(e){var q=at(e),i=hit(pi,q);if(i<0){tip.hidden=true;return;}tip.textContent=tipText(pi,i);tip.hidden=false;place(e);});
  c.addEventListener("mouseleave",function(){tip.hidden=true;});
  c.addEventListener("dblclick",function(e){zoom(0.5,tOf(at(e)));});
}
function hit(pi,q){var p=P[pi];if(!p.rows||q.x<LEFT)return -1;var r=Math.floor((q.y-AXIS)/ROW);if(r<0||r>=p.rows.length)return -1;
  var t=v0+(q.x-LEFT)/(q.w-LEFT)*(v1-v0),slack=3*(v1-v0)/(q.w-LEFT),row=p.rows[r];
  for(var k=0;k<row.length;k++){var i=row[k];if(p.call[i]-slack<=t&&t<=openEnd(p,i)+slack)return i;if(p.call[i]>t+slack)break;}return -1;}
var tip=document.getElementById("tip");
function place(e){var w=tip.offsetWidth,h=tip.offsetHeight;tip.style.left=Math.min(e.clientX+14,innerWidth-w-4)+"px";tip.style.top=(e.clientY+h+20>innerHeight?e.clientY-h-10:e.clientY+14)+"px";}
function tipText(pi,i){var p=P[pi],lines=[desc(p,i),"client "+D.cl[p.pc[p.c[i]]]+", call "+tstr(p.call[i])+", "+(p.end[i]<0?"open (outcome unknown: it may have taken effect at any time after its call, or never)":"return "+tstr(p.end[i]))];
  p.a.forEach(function(a){if(a[0]===i)lines.push("\u2691 "+a[1]);});
  var s=p.seqs[p.chosen];
  if(s){var k=s.order.indexOf(i);
    if(k>=0){lines.push("step "+(k+1)+" of "+s.order.length);if(s.states[k+1]!==undefined){lines.push("before: "+s.states[k]);lines.push("after:  "+s.states[k+1]);}}
    else{lines.push("not in this sequence");if(p.x===i&&s.has)lines.push("cannot be placed; state reached: "+s.states[s.states.length-1]);}}
  if(p.x===i)lines.push("\u2716 the operation that cannot be placed");
  return lines.join("\n");}
document.addEventListener("click",function(e){var a=e.target.closest&&e.target.closest("[data-go]");if(!a)return;e.preventDefault();
  var g=a.dataset.go.split(" ");if(g.length===2)focus(+g[0],+g[1]);else{if(!sections[+g[0]])addSection(+g[0]);sections[+g[0]].scrollIntoView({block:"start"});}});
window.addEventListener("resize",function(){redraw();});
// Keys, as on a map: + and - zoom, the arrows pan, 0 shows the whole run.
document.addEventListener("keydown",function(e){if(e.target.closest&&e.target.closest("input,textarea,select")||e.ctrlKey||e.metaKey||e.altKey)return;
  var s=(v1-v0)/4;
  if(e.key==="+"||e.key==="=")zoom(0.5);else if(e.key==="-")zoom(2);else if(e.key==="0")setView(lo,hi);
  else if(e.key==="ArrowLeft")setView(v0-s,v1-s);else if(e.key==="ArrowRight")setView(v0+s,v1+s);else return;
  e.preventDefault();});
// Any partition, also past the listed ones, by its key (or number): exact name first, then a part of it.
document.getElementById("find").addEventListener("keydown",function(e){if(e.key!=="Enter")return;var q=this.value.trim();if(!q)return;
  var hit=-1,names=[JSON.stringify(q),"key "+JSON.stringify(q),"partition "+q];
  for(var k=0;k<P.length&&hit<0;k++)if(names.indexOf(P[k].n)>=0||P[k].n===q)hit=k;
  for(k=0;k<P.length&&hit<0;k++)if(P[k].n.indexOf(q)>=0)hit=k;
  this.style.outline=hit<0?"2px solid #b00020":"";if(hit<0)return;
  if(!sections[hit])addSection(hit);var s=sections[hit];s.scrollIntoView({block:"start"});s.classList.remove("flash");void s.offsetWidth;s.classList.add("flash");});
showAll();drawOverview();
if(performance.mark)performance.mark("distkit-report-ready");
})();
`;
